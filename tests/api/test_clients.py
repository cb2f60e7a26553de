"""Who a request comes from (``api.clients``): an IPv6 /64 is one client, an IPv4-mapped address its IPv4 one, and
X-Forwarded-For is believed only from the trusted proxies, right to left, so a client cannot name itself."""

from __future__ import annotations

from typing import Any

import pytest

from api.clients import UNKNOWN, Clients, parse_proxies


def scope(peer: str | None, *forwarded: str) -> dict[str, Any]:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return {"type": "http", "client": (peer, 1234) if peer else None, "headers": headers}


def key(clients: Clients, peer: str | None, *forwarded: str) -> str:
    return clients.key_of(scope(peer, *forwarded))


def test_an_ipv6_64_is_one_client_and_ipv4_is_its_address() -> None:
    clients = Clients()
    assert key(clients, "2001:db8:1:2::1") == key(clients, "2001:db8:1:2:ffff:eeee:dddd:cccc") == "2001:db8:1:2::/64"
    assert key(clients, "2001:db8:1:3::1") == "2001:db8:1:3::/64"
    assert key(clients, "fe80::1%eth0") == "fe80::/64"
    assert key(clients, "::ffff:192.0.2.7") == key(clients, "192.0.2.7") == "192.0.2.7"
    assert key(clients, "192.0.2.8") != key(clients, "192.0.2.7")
    assert key(clients, "testclient") == key(clients, None) == UNKNOWN


def test_forwarded_headers_from_anyone_else_are_ignored() -> None:
    for clients in (Clients(), Clients(["10.0.0.0/8"])):
        assert key(clients, "203.0.113.5", "198.51.100.1") == "203.0.113.5"
        assert key(clients, "2001:db8::9", "198.51.100.1, 198.51.100.2") == "2001:db8::/64"


def test_behind_trusted_proxies_the_client_is_the_right_most_untrusted_hop() -> None:
    clients = Clients(["10.0.0.0/8", "2001:db8:ffff::1"])
    assert key(clients, "10.0.0.2", "198.51.100.7") == "198.51.100.7"
    # a client writing its own header only adds hops on the left: the proxy appended the real peer
    assert key(clients, "10.0.0.2", "1.2.3.4, 198.51.100.7") == "198.51.100.7"
    assert key(clients, "10.0.0.2", "1.2.3.4", "198.51.100.7") == "198.51.100.7"  # several headers, in order
    # a chain of trusted proxies is walked through
    assert key(clients, "10.0.0.2", "1.2.3.4, 198.51.100.7, 10.1.1.1") == "198.51.100.7"
    assert key(clients, "2001:db8:ffff::1", "2001:db8:aa:bb::5") == "2001:db8:aa:bb::/64"
    assert key(clients, "10.0.0.2", "[2001:db8:aa:bb::5]:443") == "2001:db8:aa:bb::/64"
    assert key(clients, "10.0.0.2", "198.51.100.7:5555") == "198.51.100.7"
    # what no proxy writes ends the walk; a trusted proxy without the header is its own client
    assert key(clients, "10.0.0.2", "1.2.3.4, not-an-address") == "10.0.0.2"
    assert key(clients, "10.0.0.2") == "10.0.0.2"


def test_a_proxy_setting_that_is_no_address_is_refused_by_name() -> None:
    assert [str(n) for n in parse_proxies(["10.0.0.5", " 192.168.0.0/16", "::1"])] == [
        "10.0.0.5/32", "192.168.0.0/16", "::1/128"]
    with pytest.raises(ValueError, match="CIVIC_TRUSTED_PROXIES: 'proxy.local' is not an IP address"):
        parse_proxies(["proxy.local"])
