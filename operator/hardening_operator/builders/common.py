"""What every generated object has in common: its labels, its owner and its identity.

Children carry a controller ownerReference to their profile, so that the garbage collector
removes them with it, and a managed-by label, so that the operator can watch exactly its own
objects with a server-side selector. They never inherit the profile's own labels or
annotations: a copied Argo CD tracking label would make Argo CD prune the child as an
extraneous object, and the operator would re-create it, forever.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "hardening-operator"
PROFILE_LABEL = "hardening.plumbing.ai/profile"
#: The server-side label selector that picks every object the operator generated.
MANAGED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"


@dataclass(frozen=True)
class Owner:
    """The profile that generated objects belong to."""

    name: str
    namespace: str
    uid: str
    api_version: str = "hardening.plumbing.ai/v1alpha1"
    kind: str = "HardeningProfile"

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
        }


@dataclass(frozen=True)
class Desired:
    """One object as the profile wants it: the body of a server-side apply.

    ``owned`` is false for objects the operator only contributes fields to (a namespace's
    Pod Security labels): it never creates, adopts or deletes those, and owns no more of
    them than the fields in ``body``.
    """

    body: dict[str, Any]
    owned: bool = True
    section: str = field(default="", compare=False)
    #: Cluster-scoped objects cannot have a namespaced owner: labels tie them to the profile.
    cluster_scoped: bool = False

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.name)


def child_metadata(owner: Owner, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE, PROFILE_LABEL: owner.name},
        "ownerReferences": [owner.reference()],
    }
