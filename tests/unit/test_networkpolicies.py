"""The NetworkPolicy builder: what a spec turns into, with no API server involved."""

from __future__ import annotations

from hardening_operator.api.v1alpha1 import parse_spec
from hardening_operator.builders import build_all
from hardening_operator.builders.common import Owner

OWNER = Owner(name="p", namespace="ns", uid="u-1")
#: Every allow policy leaves quarantined pods out.
NOT_QUARANTINED = {"key": "quarantine", "operator": "NotIn", "values": ["true"]}


def _specs(spec: dict) -> dict[str, dict]:
    return {d.name: d.body["spec"] for d in build_all(OWNER, parse_spec(spec))}


def test_no_section_still_arms_quarantine() -> None:
    assert _specs({}) == {"quarantine": {
        "podSelector": {"matchLabels": {"quarantine": "true"}},
        "policyTypes": ["Ingress", "Egress"]}}


def test_quarantine_switched_off_makes_no_policy_and_no_exclusion() -> None:
    specs = _specs({"quarantine": {"enabled": False}, "networkPolicy": {}})
    assert set(specs) == {"default-deny", "allow-dns"}
    assert specs["allow-dns"]["podSelector"] == {}


def test_quarantine_lets_forensic_peers_in_and_nothing_out() -> None:
    specs = _specs({"quarantine": {"value": "isolated", "allowFrom": [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "forensics"}}}]},
        "networkPolicy": {}})
    assert specs["quarantine"] == {
        "podSelector": {"matchLabels": {"quarantine": "isolated"}},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [{"namespaceSelector": {
            "matchLabels": {"kubernetes.io/metadata.name": "forensics"}}}]}],
    }
    assert specs["allow-dns"]["podSelector"] == {"matchExpressions": [
        {"key": "quarantine", "operator": "NotIn", "values": ["isolated"]}]}


def test_defaults_give_deny_and_dns_for_all_covered_pods() -> None:
    specs = _specs({"networkPolicy": {}})
    assert set(specs) == {"default-deny", "allow-dns", "quarantine"}
    assert specs["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert specs["allow-dns"]["egress"][0]["ports"] == [
        {"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]


def test_covered_pods_narrow_every_policy() -> None:
    specs = _specs({
        "podSelector": {"matchLabels": {"tier": "web"}},
        "networkPolicy": {"rules": [{"name": "r", "podSelector": {"matchLabels": {"app": "a"}},
                                     "ingress": [{}]}]},
    })
    assert specs["default-deny"]["podSelector"] == {"matchLabels": {"tier": "web"}}
    assert specs["r"]["podSelector"] == {"matchLabels": {"tier": "web", "app": "a"},
                                         "matchExpressions": [NOT_QUARANTINED]}


def test_conflicting_labels_select_nothing_rather_than_widening() -> None:
    specs = _specs({
        "podSelector": {"matchLabels": {"app": "a"}},
        "networkPolicy": {"rules": [{"name": "r", "podSelector": {"matchLabels": {"app": "b"}},
                                     "ingress": [{}]}]},
    })
    assert specs["r"]["podSelector"] == {
        "matchLabels": {"app": "a"},
        "matchExpressions": [NOT_QUARANTINED, {"key": "app", "operator": "In", "values": ["b"]}],
    }


def test_rule_with_peers_and_named_ports() -> None:
    specs = _specs({"quarantine": {"enabled": False},
                    "networkPolicy": {"defaultDeny": False, "allowDNS": False, "rules": [{
        "name": "r",
        "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
                              {"podSelector": {"matchExpressions": [
                                  {"key": "role", "operator": "Exists"}]}}],
                     "ports": [{"port": "http"}, {"port": 8000, "endPort": 8100, "protocol": "UDP"}]}],
    }]}})
    assert specs == {"r": {
        "podSelector": {},
        "policyTypes": ["Ingress"],
        "ingress": [{
            "from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
                     {"podSelector": {"matchExpressions": [{"key": "role", "operator": "Exists"}]}}],
            "ports": [{"protocol": "TCP", "port": "http"},
                      {"protocol": "UDP", "port": 8000, "endPort": 8100}],
        }],
    }}


def test_children_carry_owner_and_labels_only() -> None:
    (deny, *_) = build_all(OWNER, parse_spec({"networkPolicy": {}}))
    meta = deny.body["metadata"]
    assert meta["ownerReferences"] == [{"apiVersion": "hardening.plumbing.ai/v1alpha1",
                                        "kind": "HardeningProfile", "name": "p", "uid": "u-1",
                                        "controller": True}]
    assert meta["labels"] == {"app.kubernetes.io/managed-by": "hardening-operator",
                              "hardening.plumbing.ai/profile": "p"}
    assert "annotations" not in meta
