"""Who a request comes from, for every limit of the API: one client key per IPv4 address or IPv6 /64.

The client key
    An IPv4 address is one client. An IPv6 address counts as its /64: a single host is routinely given a whole /64
    and may pick any address in it, so per address it would be unlimited. An IPv4-mapped IPv6 address
    (``::ffff:192.0.2.1``) is its IPv4 address.

Behind a reverse proxy
    The peer of every request is then the proxy. Only proxies named in ``CIVIC_TRUSTED_PROXIES`` (addresses or CIDR
    networks) are believed: from one of them, the client is the right-most address of ``X-Forwarded-For`` (all its
    headers, in order) that is not itself a trusted proxy — what a chain of trusted proxies appended, so a client
    cannot choose it by sending a header of its own. From any other peer the header is ignored. ``Forwarded``
    (RFC 7239) is not read: configure the proxy to set ``X-Forwarded-For``. Serve with uvicorn's own proxy handling off
    (``python -m api`` does), or it would rewrite the peer from the header before the app sees it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.types import Scope

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: the prefix length of IPv6 that is one client
IPV6_CLIENT_PREFIX = 64
#: the key of a request whose peer is not an IP address (a Unix socket, a test client)
UNKNOWN = "unknown"


def parse_proxies(values: Iterable[str]) -> tuple[Network, ...]:
    """``CIVIC_TRUSTED_PROXIES``' entries as networks; a :class:`ValueError` naming an entry that is not one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"CIVIC_TRUSTED_PROXIES: {value!r} is not an IP address or network (give e.g. 10.0.0.5 or 10.0.0.0/24)"
            ) from None
    return tuple(networks)


def _address(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # a zone index names no other host
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_key(address: Address) -> str:
    """The client an address belongs to: the IPv4 address, or the IPv6 /64 (``2001:db8:1:2::/64``)."""
    if isinstance(address, ipaddress.IPv4Address):
        return str(address)
    return str(ipaddress.IPv6Network((address, IPV6_CLIENT_PREFIX), strict=False))


class Clients:
    """The app's rule for who a request comes from (``app.state.clients``)."""

    def __init__(self, trusted_proxies: Iterable[str] = ()) -> None:
        self.trusted = parse_proxies(trusted_proxies)

    def _trusted(self, address: Address) -> bool:
        return any(address.version == net.version and address in net for net in self.trusted)

    def peer_is_trusted(self, scope: Scope) -> bool:
        """Whether the request's peer (not the client a proxy names) is one of the trusted proxies."""
        peer = scope.get("client")
        address = _address(str(peer[0])) if peer else None
        return address is not None and self._trusted(address)

    def address_of(self, scope: Scope) -> Address | None:
        """The client's address: the peer, or from a trusted proxy the right-most untrusted ``X-Forwarded-For``."""
        peer = scope.get("client")
        address = _address(str(peer[0])) if peer else None
        if address is None or not self.trusted or not self._trusted(address):
            return address
        hops: list[str] = []
        for name, value in scope.get("headers") or ():
            if name.lower() == b"x-forwarded-for":
                hops.extend(value.decode("latin-1").split(","))
        for hop in reversed(hops):
            forwarded = _address(hop)
            if forwarded is None:
                break  # what a trusted proxy would not write: the hops left of it are the client's own words
            address = forwarded
            if not self._trusted(forwarded):
                break
        return address

    def key_of(self, scope: Scope) -> str:
        """The client key of a request (:func:`client_key`), worked out once per request."""
        state: dict[str, Any] = scope.setdefault("state", {})
        key = state.get("civic_client")
        if key is None:
            address = self.address_of(scope)
            key = state["civic_client"] = UNKNOWN if address is None else client_key(address)
        return key


def client_of(request: Request) -> str:
    """The client key of ``request`` under its app's rule (:class:`Clients`)."""
    clients: Clients = request.app.state.clients
    return clients.key_of(request.scope)
