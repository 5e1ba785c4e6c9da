"""The Kubernetes resources the operator reads and writes, and how to address them."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True)
class Resource:
    """One kind of object as the API serves it: group, version, plural and scope."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, *, namespace: str | None = None, name: str | None = None,
             subresource: str | None = None) -> str:
        """The URL path of the collection, or of one object when ``name`` is given."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{quote(namespace)}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{quote(name)}"
            if subresource:
                base += f"/{subresource}"
        return base

    def with_version(self, version: str) -> Resource:
        return Resource(self.group, version, self.plural, self.kind, self.namespaced)


HARDENING_PROFILES = Resource("hardening.plumbing.ai", "v1alpha1", "hardeningprofiles",
                              "HardeningProfile")
NETWORK_POLICIES = Resource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy")
POD_DISRUPTION_BUDGETS = Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget")
LIMIT_RANGES = Resource("", "v1", "limitranges", "LimitRange")
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
EVENTS = Resource("", "v1", "events", "Event")
PODS = Resource("", "v1", "pods", "Pod")
#: The version is found by discovery at run time; v1 is what current releases serve.
SECRET_STORES = Resource("external-secrets.io", "v1", "secretstores", "SecretStore")
CLUSTER_NETWORK_POLICIES = Resource("policy.networking.k8s.io", "v1alpha2",
                                    "clusternetworkpolicies", "ClusterNetworkPolicy",
                                    namespaced=False)
ADMIN_NETWORK_POLICIES = Resource("policy.networking.k8s.io", "v1alpha1",
                                  "adminnetworkpolicies", "AdminNetworkPolicy", namespaced=False)
