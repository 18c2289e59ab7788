"""The url-jobs component: retrieval's egress to web servers for URL jobs, public addresses on
ports 80 and 443 only, added to what the overlay had and nothing else."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conftest import Rendered

PRIVATE = ["10.1.2.3", "172.16.0.1", "192.168.1.20", "169.254.169.254", "100.64.0.1", "127.0.0.1"]


def _blocks(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return [peer["ipBlock"] for rule in policy["spec"]["egress"] for peer in rule["to"]]


def _allowed(policy: dict[str, Any], address: str) -> bool:
    ip = ipaddress.ip_address(address)
    for block in _blocks(policy):
        network = ipaddress.ip_network(block["cidr"])
        if ip.version == network.version and ip in network:
            excepted = (ipaddress.ip_network(c) for c in block.get("except", []))
            if not any(ip.version == e.version and ip in e for e in excepted):
                return True
    return False


def test_retrieval_may_reach_public_web_servers_and_no_private_address(
    all_rendered: dict[str, Rendered],
) -> None:
    policy = all_rendered["base+url-jobs"].get("NetworkPolicy", "retrieval-url-fetch")

    assert policy["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "retrieval"}
    assert policy["spec"]["policyTypes"] == ["Egress"]
    ports = {(p["protocol"], p["port"]) for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert ports == {("TCP", 80), ("TCP", 443)}
    assert _allowed(policy, "93.184.215.14")
    assert _allowed(policy, "2606:4700::1")
    for address in [*PRIVATE, "fd00::1", "fe80::1", "::1"]:
        assert not _allowed(policy, address), address


def test_the_component_adds_its_policy_and_changes_nothing_else(
    all_rendered: dict[str, Rendered],
) -> None:
    def named(rendered: Rendered) -> set[tuple[str, str]]:
        return {(doc["kind"], doc["metadata"]["name"]) for doc in rendered.docs}

    added = named(all_rendered["base+url-jobs"]) - named(all_rendered["base"])

    assert added == {("NetworkPolicy", "retrieval-url-fetch")}
    assert named(all_rendered["base"]) <= named(all_rendered["base+url-jobs"])
