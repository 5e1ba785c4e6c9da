"""Quarantine: the policies that cut off a pod labelled quarantine=<value>.

NetworkPolicies only add allowed traffic; a deny cannot cancel another policy's allow. So
isolation rests on two legs, both in place before any pod is labelled:

1. a ``quarantine`` NetworkPolicy that selects the labelled pods for ingress and egress and
   allows nothing but the forensic peers, and
2. every allow policy the operator makes leaves those pods out of its selector
   (``networkpolicies._not_quarantined``).

Policies that others made can still let traffic through; the engine finds and reports
them. Where the cluster serves an admin tier (``ClusterNetworkPolicy`` or the older
``AdminNetworkPolicy``), ``admin_policy`` builds a Deny there, which wins over every
NetworkPolicy.
"""

from __future__ import annotations

from typing import Any

from hardening_operator.api.v1alpha1 import QUARANTINE_LABEL_KEY, HardeningProfileSpec
from hardening_operator.builders.common import (
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    PROFILE_LABEL,
    Desired,
    Owner,
    child_metadata,
)

POLICY_NAME = "quarantine"
#: Labels an admin-tier policy with the namespace it quarantines for (it is cluster-scoped).
NAMESPACE_LABEL = "hardening.plumbing.ai/namespace"
#: Admin-tier priority: low numbers win; this leaves room above for the cluster's own.
ADMIN_PRIORITY = 10


def build(owner: Owner, spec: HardeningProfileSpec) -> list[Desired]:
    if not spec.quarantine.enabled:
        return []
    policy: dict[str, Any] = {
        "podSelector": {"matchLabels": {QUARANTINE_LABEL_KEY: spec.quarantine.value}},
        "policyTypes": ["Ingress", "Egress"],
    }
    if spec.quarantine.allow_from:
        policy["ingress"] = [{"from": [peer.to_k8s() for peer in spec.quarantine.allow_from]}]
    return [Desired(
        body={
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": child_metadata(owner, POLICY_NAME),
            "spec": policy,
        },
        section="quarantine",
    )]


def admin_policy_name(namespace: str) -> str:
    return f"hardening-quarantine-{namespace}"


def admin_policy(owner: Owner, spec: HardeningProfileSpec, *, kind: str) -> Desired:
    """The admin-tier Deny for the quarantined pods of the namespace.

    ``kind`` is ``ClusterNetworkPolicy`` (tier Admin; actions Accept/Deny) or
    ``AdminNetworkPolicy`` (actions Allow/Deny). Forensic peers given by selectors are
    accepted first; ipBlock peers cannot be expressed for ingress there and are left out.
    The policy is cluster-scoped, so it cannot have the profile as owner: labels name its
    namespace and profile, and the engine deletes it itself.
    """
    accept = "Accept" if kind == "ClusterNetworkPolicy" else "Allow"
    subject = {"pods": {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": owner.namespace}},
        "podSelector": {"matchLabels": {QUARANTINE_LABEL_KEY: spec.quarantine.value}},
    }}
    forensic = [p for p in (_admin_peer(owner, peer.to_k8s())
                            for peer in spec.quarantine.allow_from) if p]
    ingress: list[dict[str, Any]] = []
    if forensic:
        ingress.append({"name": "forensics", "action": accept, "from": forensic})
    ingress.append({"name": "deny-all", "action": "Deny", "from": [{"namespaces": {}}]})
    egress = [{"name": "deny-all", "action": "Deny",
               "to": [{"namespaces": {}}, {"networks": ["0.0.0.0/0", "::/0"]}]}]
    body: dict[str, Any] = {
        "apiVersion": ("policy.networking.k8s.io/v1alpha2" if kind == "ClusterNetworkPolicy"
                       else "policy.networking.k8s.io/v1alpha1"),
        "kind": kind,
        "metadata": {
            "name": admin_policy_name(owner.namespace),
            "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE, PROFILE_LABEL: owner.name,
                       NAMESPACE_LABEL: owner.namespace},
        },
        "spec": {"priority": ADMIN_PRIORITY, "subject": subject,
                 "ingress": ingress, "egress": egress},
    }
    if kind == "ClusterNetworkPolicy":
        body["spec"]["tier"] = "Admin"
    return Desired(body=body, owned=True, section="quarantine", cluster_scoped=True)


def _admin_peer(owner: Owner, peer: dict[str, Any]) -> dict[str, Any] | None:
    if "ipBlock" in peer:
        return None
    if "podSelector" in peer:
        namespaces = peer.get("namespaceSelector", {
            "matchLabels": {"kubernetes.io/metadata.name": owner.namespace}})
        return {"pods": {"namespaceSelector": namespaces, "podSelector": peer["podSelector"]}}
    return {"namespaces": peer.get("namespaceSelector", {})}
