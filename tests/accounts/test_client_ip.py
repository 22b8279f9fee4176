"""client_ip: X-Forwarded-For is believed only as far as trusted proxies wrote it."""

from __future__ import annotations

import pytest

from parley.accounts.client_ip import client_ip, is_loopback, parse_ip, rate_limit_key

PROXY = ("10.0.0.1",)
PROXIES = ("10.0.0.0/8", "192.168.1.5", "fd00::/8")


def test_no_trusted_proxies_means_the_peer() -> None:
    assert client_ip("203.0.113.7", "1.2.3.4", ()) == "203.0.113.7"
    assert client_ip("203.0.113.7", None, PROXY) == "203.0.113.7"


def test_untrusted_peer_cannot_spoof() -> None:
    assert client_ip("203.0.113.7", "1.2.3.4", PROXY) == "203.0.113.7"


def test_trusted_peer_without_header_is_the_client() -> None:
    assert client_ip("10.0.0.1", None, PROXY) == "10.0.0.1"
    assert client_ip("10.0.0.1", "", PROXY) == "10.0.0.1"
    assert client_ip("10.0.0.1", " , ", PROXY) == "10.0.0.1"


def test_one_trusted_proxy() -> None:
    assert client_ip("10.0.0.1", "198.51.100.4", PROXY) == "198.51.100.4"


def test_spoofed_left_entries_are_ignored() -> None:
    # The client sent "X-Forwarded-For: 1.1.1.1"; our proxy appended the real address.
    assert client_ip("10.0.0.1", "1.1.1.1, 198.51.100.4", PROXY) == "198.51.100.4"


def test_chain_of_trusted_proxies_with_cidr() -> None:
    header = "6.6.6.6, 198.51.100.4, 192.168.1.5, 10.2.3.4"
    assert client_ip("10.9.9.9", header, PROXIES) == "198.51.100.4"


def test_untrusted_hop_in_the_middle_stops_the_walk() -> None:
    header = "198.51.100.4, 203.0.113.50, 10.2.3.4"
    assert client_ip("10.0.0.2", header, PROXIES) == "203.0.113.50"


def test_all_hops_trusted_gives_the_leftmost() -> None:
    assert client_ip("10.0.0.1", "10.0.0.3, 10.0.0.2", PROXIES) == "10.0.0.3"


def test_garbage_hop_ends_at_the_last_trusted_hop() -> None:
    assert client_ip("10.0.0.1", "198.51.100.4, unknown", PROXIES) == "10.0.0.1"
    assert client_ip("10.0.0.1", "198.51.100.4, not-an-ip, 10.0.0.2", PROXIES) == "10.0.0.2"


def test_ipv6_and_ports() -> None:
    assert client_ip("fd00::1", "2001:db8::5", PROXIES) == "2001:db8::5"
    assert client_ip("fd00::1", "[2001:db8::5]:4711", PROXIES) == "2001:db8::5"
    assert client_ip("10.0.0.1", "198.51.100.4:5555", PROXIES) == "198.51.100.4"
    assert client_ip("::ffff:10.0.0.1", "198.51.100.4", PROXIES) == "198.51.100.4"
    assert client_ip("10.0.0.1", "::ffff:198.51.100.4", PROXIES) == "198.51.100.4"
    assert client_ip("2001:DB8:0:0::1", None, ()) == "2001:db8::1"


def test_peer_that_is_not_an_ip_is_returned_as_is() -> None:
    assert client_ip("unix:/run/parley.sock", "1.2.3.4", PROXIES) == "unix:/run/parley.sock"


def test_hostile_header_is_bounded() -> None:
    header = ", ".join(["10.0.0.9"] * 100_000)
    assert client_ip("10.0.0.1", "198.51.100.4, " + header, PROXIES) == "10.0.0.9"


def test_bad_trusted_proxy_entry() -> None:
    with pytest.raises(ValueError, match="trusted_proxies"):
        client_ip("10.0.0.1", "1.2.3.4", ("not-a-network",))


def test_parse_ip() -> None:
    assert str(parse_ip(" 1.2.3.4 ")) == "1.2.3.4"
    assert str(parse_ip("[::1]")) == "::1"
    assert str(parse_ip("fe80::1%eth0")) == "fe80::1"
    assert parse_ip("[::1") is None
    assert parse_ip("") is None
    assert parse_ip("999.1.1.1") is None


def test_is_loopback() -> None:
    for ip in ("127.0.0.1", "127.255.0.3", "::1", "::ffff:127.0.0.1", "[::1]:80"):
        assert is_loopback(ip), ip
    for ip in ("10.0.0.1", "0.0.0.0", "::", "localhost", "", "2001:db8::1"):
        assert not is_loopback(ip), ip


def test_rate_limit_key() -> None:
    assert rate_limit_key("198.51.100.4") == "198.51.100.4"
    assert rate_limit_key("::ffff:198.51.100.4") == "198.51.100.4"
    assert rate_limit_key("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert rate_limit_key("weird") == "weird"
