"""Container resource defaults, as one LimitRange."""

from __future__ import annotations

from typing import Any

from hardening_operator.api.v1alpha1 import HardeningProfileSpec
from hardening_operator.builders.common import Desired, Owner, child_metadata

NAME = "hardening-resource-defaults"


def build(owner: Owner, spec: HardeningProfileSpec) -> list[Desired]:
    defaults = spec.resource_defaults
    if defaults is None:
        return []
    limit: dict[str, Any] = {"type": "Container"}
    if defaults.requests is not None and defaults.requests.to_k8s():
        limit["defaultRequest"] = defaults.requests.to_k8s()
    if defaults.limits is not None and defaults.limits.to_k8s():
        limit["default"] = defaults.limits.to_k8s()
    return [Desired(
        body={
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": child_metadata(owner, NAME),
            "spec": {"limits": [limit]},
        },
        section="resourceDefaults",
    )]
