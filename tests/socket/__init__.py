"""Tests of the Phoenix protocol core (src/parley/api/socket)."""
