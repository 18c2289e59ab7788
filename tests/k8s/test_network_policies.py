"""Network policies: with the component on, exactly the paths the design allows are open.

A small evaluator of the NetworkPolicy semantics (a connection needs the source's egress and the
destination's ingress to allow it; a pod no policy selects for a direction is open in it) asks,
for every pair of pods and outside peers and every port that matters, whether a connection is
allowed, and compares the answer with the design's list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import Rendered

Manifest = dict[str, Any]
NAMESPACE = "agent-bruno"
PORTS = (53, 443, 8080, 8089, 9000, 9090, 11434, 50051, 50052, 50053)


@dataclass(frozen=True)
class Peer:
    name: str
    namespace: str
    labels: dict[str, str] = field(default_factory=dict)
    internet: bool = False

    @property
    def namespace_labels(self) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace}


OUTSIDE = (
    Peer("ingress-controller", "ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"}),
    Peer("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"}),
    Peer("flagger", "flagger-system", {"app.kubernetes.io/name": "loadtester"}),
    Peer("ollama-namespace", "ollama", {"app.kubernetes.io/name": "ollama"}),
    Peer("kube-dns", "kube-system", {"k8s-app": "kube-dns"}),
    Peer("minio", "minio", {"app.kubernetes.io/name": "minio"}),
    Peer("internet", "", internet=True),
)


def _matches(selector: Manifest, labels: dict[str, str]) -> bool:
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        present = expression["key"] in labels
        value = labels.get(expression["key"])
        operator = expression["operator"]
        if operator == "In" and value not in expression["values"]:
            return False
        if operator == "NotIn" and value in expression["values"]:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def _peer_matches(rule_peer: Manifest, peer: Peer) -> bool:
    if "ipBlock" in rule_peer:
        # Pod traffic inside the cluster is not matched by the (public-only) ipBlocks we use.
        return peer.internet
    if peer.internet:
        return False
    if "namespaceSelector" in rule_peer:
        if not _matches(rule_peer["namespaceSelector"], peer.namespace_labels):
            return False
    elif peer.namespace != NAMESPACE:
        return False
    return _matches(rule_peer.get("podSelector", {}), peer.labels)


def _rule_allows(rule: Manifest, key: str, peer: Peer, port: int) -> bool:
    ports = rule.get("ports")
    if ports and not any(p.get("port") == port for p in ports):
        return False
    peers = rule.get(key)
    return not peers or any(_peer_matches(p, peer) for p in peers)


class Policies:
    def __init__(self, policies: list[Manifest]) -> None:
        self.policies = policies

    def _selecting(self, pod: Peer, direction: str) -> list[Manifest]:
        if pod.namespace != NAMESPACE:
            return []
        return [
            p
            for p in self.policies
            if direction in p["spec"].get("policyTypes", ["Ingress"])
            and _matches(p["spec"]["podSelector"], pod.labels)
        ]

    def allows(self, source: Peer, destination: Peer, port: int) -> bool:
        egress = self._selecting(source, "Egress")
        if egress and not any(
            _rule_allows(rule, "to", destination, port)
            for policy in egress
            for rule in policy["spec"].get("egress", [])
        ):
            return False
        ingress = self._selecting(destination, "Ingress")
        return not ingress or any(
            _rule_allows(rule, "from", source, port)
            for policy in ingress
            for rule in policy["spec"].get("ingress", [])
        )


def _pods(rendered: Rendered) -> list[Peer]:
    pods = []
    for workload in rendered.workloads():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        pods.append(Peer(workload["metadata"]["name"], NAMESPACE, labels))
        if any(
            c["spec"]["targetRef"]["name"] == workload["metadata"]["name"]
            for c in rendered.of_kind("Canary")
        ):
            # Flagger's primary copy: the same labels, its name label suffixed.
            primary = {
                **labels,
                "app.kubernetes.io/name": labels["app.kubernetes.io/name"] + "-primary",
            }
            pods.append(Peer(f"{workload['metadata']['name']}-primary", NAMESPACE, primary))
    return pods


def expected_paths(rendered: Rendered, pods: list[Peer]) -> set[tuple[str, str, int]]:
    """The design (docs/architecture.md, k8s/README.md) as (source, destination, port)."""
    names = {p.name for p in pods}
    edges = {n for n in names if n in ("edge", "edge-primary")}
    outside = {p.name for p in OUTSIDE}
    paths: set[tuple[str, str, int]] = set()
    for edge in edges:
        paths |= {(src, edge, 8080) for src in outside}  # only from outside ...
        paths |= {(edge, "retrieval", 50052), (edge, "generation", 50053)}
        paths |= {(edge, "embedding", 50051)}  # /ready asks embedding's health
    if "golden-gate" in names:
        paths |= {("golden-gate", e, 8080) for e in edges}  # ... and the canary gate
        paths.add(("flagger", "golden-gate", 8080))
    if "bruno-load" in names:
        paths |= {("bruno-load", e, 8080) for e in edges}  # ... and the canary's load test
        paths.add(("flagger", "bruno-load", 8089))
    paths.add(("retrieval", "embedding", 50051))
    for service in ("embedding", "retrieval", "generation"):
        paths.add(("prometheus", service, 9090))
    for edge in edges:
        paths.add(("prometheus", edge, 8080))
    for client in ("generation", "embedding"):
        paths.add((client, "ollama-namespace", 11434))
        if "ollama" in names:
            paths.add((client, "ollama", 11434))
    if "ollama" in names:
        paths.add(("ollama", "internet", 443))
    for pod in names:
        paths.add((pod, "kube-dns", 53))
    if rendered.has("lancedb-s3"):
        for store in ("internet", "minio"):
            paths |= {("retrieval", store, 443), ("retrieval", store, 9000)}
    if "retrieval-reader" in names:
        # The readers get the writer's paths: searched by the edge, asking embedding for query
        # vectors, reading the tables from object storage, scraped. Nothing else.
        paths |= {(edge, "retrieval-reader", 50052) for edge in edges}
        paths.add(("retrieval-reader", "embedding", 50051))
        paths.add(("prometheus", "retrieval-reader", 9090))
        for store in ("internet", "minio"):
            paths |= {("retrieval-reader", store, 443), ("retrieval-reader", store, 9000)}
    return paths


def test_policies_come_with_the_component_only(all_rendered: dict[str, Rendered]) -> None:
    for rendered in all_rendered.values():
        names = {p["metadata"]["name"] for p in rendered.of_kind("NetworkPolicy")}
        assert ("default-deny" in names) == rendered.has("network-policies"), rendered.name


def test_every_overlay_denies_all_traffic_by_default(overlay: Rendered) -> None:
    # dev too: k3s enforces NetworkPolicy out of the box, so a policy bug shows there first.
    deny = overlay.get("NetworkPolicy", "default-deny")

    assert deny["spec"]["podSelector"] == {}
    assert sorted(deny["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    assert "ingress" not in deny["spec"]
    assert "egress" not in deny["spec"]


@pytest.mark.parametrize(
    "variant",
    [
        "dev",
        "staging",
        "prod",
        "base+network-policies",
        "dev+retrieval-readers",
        "staging+retrieval-readers",
        "prod+everything",
    ],
)
def test_only_the_designed_paths_are_open(all_rendered: dict[str, Rendered], variant: str) -> None:
    rendered = all_rendered[variant]
    assert rendered.has("network-policies")
    policies = Policies(rendered.of_kind("NetworkPolicy"))
    pods = _pods(rendered)
    allowed = {
        (source.name, destination.name, port)
        for source in (*pods, *OUTSIDE)
        for destination in (*pods, *OUTSIDE)
        for port in PORTS
        if source is not destination
        and not (source.namespace != NAMESPACE and destination.namespace != NAMESPACE)
        and policies.allows(source, destination, port)
    }
    expected = expected_paths(rendered, pods)
    assert allowed - expected == set(), "open but not designed"
    assert expected - allowed == set(), "designed but closed"


def test_the_evaluator_sees_a_closed_path_when_a_policy_is_missing(
    all_rendered: dict[str, Rendered],
) -> None:
    rendered = all_rendered["staging"]
    without = [p for p in rendered.of_kind("NetworkPolicy") if p["metadata"]["name"] != "retrieval"]
    pods = {p.name: p for p in _pods(rendered)}
    assert Policies(rendered.of_kind("NetworkPolicy")).allows(
        pods["edge"], pods["retrieval"], 50052
    )
    assert not Policies(without).allows(pods["edge"], pods["retrieval"], 50052)
