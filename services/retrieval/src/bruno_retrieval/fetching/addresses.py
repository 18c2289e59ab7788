"""Which addresses a URL job may connect to: public ones, and what the operator allows.

Secure by default: a URL that resolves to this machine, the cluster's or the home network,
link-local (the cloud metadata address 169.254.169.254), carrier-grade NAT, multicast, reserved
or unspecified space is refused, unless its address lies in an allowed network or its host is
an allowed name (``BRUNO_FETCH_ALLOWED_NETWORKS``).

IPv6 is judged by its own table, not by :attr:`ipaddress.IPv6Address.is_global` (whose answer
changes between Python patch releases and which calls 6to4 around 127.0.0.1 global): a public
IPv6 address is global unicast (``2000::/3``) outside the special blocks inside it (IETF
protocol assignments ``2001::/23`` with Teredo, documentation ``2001:db8::/32`` and
``3fff::/20``). An IPv6 address that carries an IPv4 one a host can be reached at is judged by
the IPv4 address: IPv4-mapped ``::ffff:a.b.c.d``, well-known NAT64 ``64:ff9b::a.b.c.d`` and 6to4
``2002:AABB:CCDD::/48``. The other IPv4-carrying forms are refused outright, as nothing on the
public internet is served from them: IPv4-compatible ``::a.b.c.d`` (deprecated, and some stacks
route it to the IPv4 address), SIIT ``::ffff:0:a.b.c.d`` (a translator's own), local-use NAT64
``64:ff9b:1::/48`` (the operator's translator, and where the IPv4 address sits depends on the
prefix length it chose) and Teredo (a NAT-traversal client, never a web server). An operator
who does serve from one allows its network.

    policy = AddressPolicy.parse(["192.168.1.0/24", "wiki.home.arpa", ".lan"])
    policy.allows("wiki.home.arpa", ip_address("192.168.1.20"))   # True: a name allowed
    policy.allows("example.org", ip_address("10.0.0.5"))          # False: private
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
# Special blocks inside 2000::/3 (the IANA IPv6 special-purpose registry): no web server.
_SPECIAL_GLOBAL_UNICAST = (
    ipaddress.IPv6Network("2001::/23"),  # IETF protocol assignments, Teredo 2001::/32 among them
    ipaddress.IPv6Network("2001:db8::/32"),  # documentation
    ipaddress.IPv6Network("3fff::/20"),  # documentation (RFC 9637)
)
# A host name, or a domain (a leading dot) whose every name is allowed.
_HOST_NAME = re.compile(r"^\.?[a-z0-9_-]+(\.[a-z0-9_-]+)*$")


def embedded_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one stands for (mapped, NAT64 or 6to4), else the address
    itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if address.sixtofour is not None:
            return address.sixtofour
    return address


def is_public(address: IPAddress) -> bool:
    """Whether ``address`` is a unicast address of the public internet (see the module
    docstring for IPv6).

    For IPv4, ``is_global`` excludes private (RFC 1918), loopback, link-local, CGNAT
    (100.64.0.0/10), reserved and unspecified space; multicast is global in the registry's
    sense but never a web server.
    """
    address = embedded_ipv4(address)
    if isinstance(address, ipaddress.IPv6Address):
        return address in _GLOBAL_UNICAST and not any(
            address in special for special in _SPECIAL_GLOBAL_UNICAST
        )
    return address.is_global and not address.is_multicast


def _network(entry: str) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(entry.strip("[]"), strict=False)
    except ValueError:
        return None


@dataclasses.dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Public addresses, plus the operator's networks and host names (a name starting with
    ``.`` allows every name under it)."""

    networks: tuple[IPNetwork, ...] = ()
    names: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AddressPolicy:
        """From the setting's entries: a CIDR or address is a network, anything else a name.
        ValueError for an entry that is neither."""
        networks: list[IPNetwork] = []
        names: set[str] = set()
        for raw in entries:
            entry = raw.strip().lower()
            if not entry:
                continue
            if (network := _network(entry)) is not None:
                networks.append(network)
            elif _HOST_NAME.match(entry.rstrip(".")):
                names.add(entry.rstrip("."))
            else:
                raise ValueError(f"{raw!r} is neither a network (CIDR) nor a host name")
        return cls(tuple(networks), frozenset(names))

    def allows_name(self, host: str) -> bool:
        """Whether the operator allowed ``host`` by name (its addresses are then not checked)."""
        host = host.lower().rstrip(".")
        return host in self.names or any(
            name.startswith(".") and host.endswith(name) for name in self.names
        )

    def allows(self, host: str, address: IPAddress) -> bool:
        """Whether a connection to ``host`` at ``address`` may be made."""
        if self.allows_name(host) or is_public(address):
            return True
        checked = (address, embedded_ipv4(address))
        return any(a in network for a in checked for network in self.networks)
