"""PodDisruptionBudgets: one per entry of ``spec.disruptionBudgets``."""

from __future__ import annotations

from typing import Any

from hardening_operator.api.v1alpha1 import HardeningProfileSpec
from hardening_operator.builders.common import Desired, Owner, child_metadata


def build(owner: Owner, spec: HardeningProfileSpec) -> list[Desired]:
    budgets = []
    for entry in spec.disruption_budgets:
        body: dict[str, Any] = {"selector": entry.selector.to_k8s()}
        if entry.min_available is not None:
            body["minAvailable"] = entry.min_available
        if entry.max_unavailable is not None:
            body["maxUnavailable"] = entry.max_unavailable
        budgets.append(Desired(
            body={
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": child_metadata(owner, entry.name),
                "spec": body,
            },
            section="disruptionBudgets",
        ))
    return budgets
