"""The kinds of object a profile can own, and the API resource each is served as."""

from __future__ import annotations

from hardening_operator.kube.resources import (
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
#: Kinds that come with somebody else's CRD; their version is found by discovery.
DISCOVERED: dict[str, Resource] = {SECRET_STORES.kind: SECRET_STORES}

#: Kinds whose objects a profile owns outright (and so may delete when unwanted).
OWNED_KINDS: tuple[str, ...] = ("NetworkPolicy", "PodDisruptionBudget", "LimitRange",
                                "SecretStore")


def resource_for(kind: str, served: dict[str, Resource | None]) -> Resource | None:
    """The resource of a kind, or None while the API server does not serve it."""
    if kind in BUILTIN:
        return BUILTIN[kind]
    return served.get(kind)
