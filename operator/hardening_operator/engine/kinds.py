"""The kinds of object a profile can own, and the API resource each is served as."""

from __future__ import annotations

from hardening_operator.kube.resources import (
    ADMIN_NETWORK_POLICIES,
    CLUSTER_NETWORK_POLICIES,
    LIMIT_RANGES,
    NAMESPACES,
    NETWORK_POLICIES,
    POD_DISRUPTION_BUDGETS,
    SECRET_STORES,
    Resource,
)

#: Kinds served by every cluster; their resources are fixed.
BUILTIN: dict[str, Resource] = {
    r.kind: r for r in (NETWORK_POLICIES, POD_DISRUPTION_BUDGETS, LIMIT_RANGES, NAMESPACES)
}
#: Kinds that come with somebody else's CRD, each with the versions the operator speaks,
#: preferred first; which one the cluster serves is found by discovery.
DISCOVERED: dict[str, tuple[Resource, tuple[str, ...]]] = {
    # External Secrets Operator serves only v1 since 0.17; v1beta1 where it is all there is.
    SECRET_STORES.kind: (SECRET_STORES, ("v1", "v1beta1")),
    CLUSTER_NETWORK_POLICIES.kind: (CLUSTER_NETWORK_POLICIES, ("v1alpha2",)),
    ADMIN_NETWORK_POLICIES.kind: (ADMIN_NETWORK_POLICIES, ("v1alpha1",)),
}

#: The admin-tier policy kinds, the newer first: quarantine uses the first one served.
ADMIN_TIER_KINDS: tuple[str, ...] = ("ClusterNetworkPolicy", "AdminNetworkPolicy")

#: Kinds whose objects a profile owns outright (and so may delete when unwanted).
OWNED_KINDS: tuple[str, ...] = ("NetworkPolicy", "PodDisruptionBudget", "LimitRange",
                                "SecretStore", *ADMIN_TIER_KINDS)


def resource_for(kind: str, served: dict[str, Resource | None]) -> Resource | None:
    """The resource of a kind, or None while the API server does not serve it."""
    if kind in BUILTIN:
        return BUILTIN[kind]
    return served.get(kind)
