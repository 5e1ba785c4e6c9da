"""Pod Security Admission labels on the profile's namespace.

The namespace is not the profile's: the operator contributes only these labels, under its
own field manager, so every other label (and whoever manages it) is left alone. Applying a
body without them gives them up again, which is how the section's removal is carried out.
"""

from __future__ import annotations

from typing import Any

from hardening_operator.api.v1alpha1 import HardeningProfileSpec
from hardening_operator.builders.common import Desired, Owner

LABEL_PREFIX = "pod-security.kubernetes.io/"


def build(owner: Owner, spec: HardeningProfileSpec) -> list[Desired]:
    section = spec.pod_security
    if section is None:
        return []
    labels: dict[str, str] = {}
    for mode in ("enforce", "audit", "warn"):
        setting = getattr(section, mode)
        if setting is not None:
            labels[f"{LABEL_PREFIX}{mode}"] = setting.level
            labels[f"{LABEL_PREFIX}{mode}-version"] = setting.version
    if not labels:
        return []
    return [Desired(body=namespace_body(owner.namespace, labels), owned=False,
                    section="podSecurity")]


def namespace_body(namespace: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """An apply body for the namespace with exactly these labels of ours."""
    metadata: dict[str, Any] = {"name": namespace}
    if labels:
        metadata["labels"] = labels
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}
