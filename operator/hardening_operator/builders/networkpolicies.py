"""NetworkPolicies: a default deny, DNS egress, and one policy per allow rule.

NetworkPolicies only ever add allowed traffic, so the default deny is what closes the
namespace and each rule opens exactly one path. Every policy selects the profile's covered
pods (``spec.podSelector``) and, for a rule, the rule's own pods within them.
"""

from __future__ import annotations

from typing import Any

from hardening_operator.api.v1alpha1 import (
    QUARANTINE_LABEL_KEY,
    AllowRule,
    HardeningProfileSpec,
    LabelSelector,
    LabelSelectorRequirement,
)
from hardening_operator.builders.common import Desired, Owner, child_metadata

API_VERSION = "networking.k8s.io/v1"
DEFAULT_DENY = "default-deny"
ALLOW_DNS = "allow-dns"

_KUBE_DNS_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}


def build(owner: Owner, spec: HardeningProfileSpec) -> list[Desired]:
    section = spec.network_policy
    if section is None:
        return []
    covered = spec.pod_selector
    # Allow policies leave quarantined pods out, so that the label cuts a pod off the
    # moment it lands: nothing has to react to it.
    allowed = [covered, *_not_quarantined(spec)]
    policies: list[Desired] = []
    if section.default_deny:
        policies.append(_policy(owner, DEFAULT_DENY, _select(covered), {
            "policyTypes": ["Ingress", "Egress"],
        }))
    if section.allow_dns:
        policies.append(_policy(owner, ALLOW_DNS, _select(*allowed), {
            "policyTypes": ["Egress"],
            "egress": [{
                "to": [_KUBE_DNS_PEER],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
            }],
        }))
    policies.extend(_rule_policy(owner, allowed, rule) for rule in section.rules)
    return policies


def _not_quarantined(spec: HardeningProfileSpec) -> list[LabelSelector]:
    if not spec.quarantine.enabled:
        return []
    return [LabelSelector(matchExpressions=[LabelSelectorRequirement(
        key=QUARANTINE_LABEL_KEY, operator="NotIn", values=[spec.quarantine.value])])]


def _rule_policy(owner: Owner, allowed: list[LabelSelector], rule: AllowRule) -> Desired:
    spec: dict[str, Any] = {"policyTypes": []}
    if rule.ingress:
        spec["policyTypes"].append("Ingress")
        spec["ingress"] = [
            _strip_empty({
                "from": [peer.to_k8s() for peer in entry.from_],
                "ports": [port.to_k8s() for port in entry.ports],
            })
            for entry in rule.ingress
        ]
    if rule.egress:
        spec["policyTypes"].append("Egress")
        spec["egress"] = [
            _strip_empty({
                "to": [peer.to_k8s() for peer in entry.to],
                "ports": [port.to_k8s() for port in entry.ports],
            })
            for entry in rule.egress
        ]
    if not spec["policyTypes"]:
        # A rule that allows nothing still selects its pods for ingress, which denies
        # nothing further and keeps the policy valid.
        spec["policyTypes"] = ["Ingress"]
    return _policy(owner, rule.name, _select(*allowed, rule.pod_selector), spec)


def _policy(owner: Owner, name: str, pod_selector: dict[str, Any],
            spec: dict[str, Any]) -> Desired:
    return Desired(
        body={
            "apiVersion": API_VERSION,
            "kind": "NetworkPolicy",
            "metadata": child_metadata(owner, name),
            "spec": {"podSelector": pod_selector, **spec},
        },
        section="networkPolicy",
    )


def _select(*selectors: LabelSelector) -> dict[str, Any]:
    """The conjunction of label selectors, as one selector."""
    match_labels: dict[str, str] = {}
    expressions: list[dict[str, Any]] = []
    for selector in selectors:
        rendered = selector.to_k8s()
        for key, value in rendered.get("matchLabels", {}).items():
            if key in match_labels and match_labels[key] != value:
                # Two different values for one key can never both match: keep both as
                # expressions so that the policy honestly selects nothing.
                expressions.append({"key": key, "operator": "In", "values": [value]})
            else:
                match_labels[key] = value
        expressions.extend(rendered.get("matchExpressions", []))
    selector: dict[str, Any] = {}
    if match_labels:
        selector["matchLabels"] = match_labels
    if expressions:
        selector["matchExpressions"] = expressions
    return selector


def _strip_empty(rule: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in rule.items() if value}
