"""Parley: an actor-model chat backend on trio that speaks the Phoenix Channels protocol."""

__version__ = "0.1.0"
