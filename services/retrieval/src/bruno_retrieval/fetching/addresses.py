"""Which addresses a URL job may connect to: public ones, and what the operator allows.

Secure by default: a URL that resolves to this machine, the cluster's or the home network,
link-local (the cloud metadata address 169.254.169.254), carrier-grade NAT, multicast, reserved
or unspecified space is refused, unless its address lies in an allowed network or its host is
an allowed name (``BRUNO_FETCH_ALLOWED_NETWORKS``).

Both families are judged by fixed tables, not by :attr:`ipaddress.IPv4Address.is_global` and
its IPv6 twin, whose answers change between Python patch releases (3.11.7 calls 6to4 around
127.0.0.1 global, and 192.0.0.9 became global in 3.12.4): the same address is refused by every
Python. A public IPv4 address is any outside the blocks of the IANA IPv4 special-purpose
registry (RFC 6890) that no web server answers from: this network ``0/8``, private ``10/8``,
``172.16/12`` and ``192.168/16``, CGNAT ``100.64/10``, loopback ``127/8``, link-local
``169.254/16`` (the cloud metadata address), IETF protocol assignments ``192.0.0/24`` (all of
it: the registry calls its anycast ``192.0.0.9`` and ``.10`` global, but they are PCP and TURN
service addresses, not web servers), the documentation blocks ``192.0.2/24``,
``198.51.100/24`` and ``203.0.113/24``, the retired 6to4 relay anycast ``192.88.99/24``,
benchmarking ``198.18/15``, multicast ``224/4`` and reserved ``240/4`` with the broadcast
address. The registry's other globally reachable entries (AS112 ``192.31.196/24`` and
``192.175.48/24``, AMT ``192.52.193/24``) are public. A public
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

# IPv4 blocks where no web server is (see the module docstring), lowest first.
_SPECIAL_IPV4 = tuple(
    ipaddress.IPv4Network(block)
    for block in (
        "0.0.0.0/8",  # this network
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # shared address space (CGNAT)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, the cloud metadata address among it
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments, its PCP and TURN anycast included
        "192.0.2.0/24",  # documentation (TEST-NET-1)
        "192.88.99.0/24",  # 6to4 relay anycast (retired, RFC 7526)
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation (TEST-NET-2)
        "203.0.113.0/24",  # documentation (TEST-NET-3)
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, 255.255.255.255 (limited broadcast) among it
    )
)
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
    """Whether ``address`` is a unicast address of the public internet, by the fixed tables of
    the module docstring."""
    address = embedded_ipv4(address)
    if isinstance(address, ipaddress.IPv6Address):
        return address in _GLOBAL_UNICAST and not any(
            address in special for special in _SPECIAL_GLOBAL_UNICAST
        )
    return not any(address in special for special in _SPECIAL_IPV4)


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
