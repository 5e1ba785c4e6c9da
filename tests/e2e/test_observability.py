"""Metrics and logs, as a cluster's monitoring would read them."""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

import pytest

from tests.e2e.helpers import child_status, is_ready
from tests.support import profile, to_yaml, wait_for

BUDGET = {"name": "b", "minAvailable": 1, "selector": {"matchLabels": {"app": "a"}}}


def _metric(operator: Any, name: str, **labels: str) -> float | None:
    assert operator.metrics_url
    text = urllib.request.urlopen(operator.metrics_url, timeout=5).read().decode()
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.mark.usefixtures("operator")
def test_metrics_count_reconciles_repairs_and_quarantine(cluster: Any, api: Any, operator: Any,
                                                         namespace: str) -> None:
    cluster.kubectl("apply", "-f", "-", input=to_yaml(profile("p", namespace, {
        "disruptionBudgets": [BUDGET]})))
    wait_for(lambda: is_ready(api, namespace, "p"))
    assert (_metric(operator, "hardening_reconciles_total", namespace=namespace,
                    result="done") or 0) >= 1
    assert (_metric(operator, "hardening_reconcile_duration_seconds_count") or 0) >= 1
    cluster.kubectl("delete", "pdb", "b", "-n", namespace)
    wait_for(lambda: (child_status(api, namespace, "p", "PodDisruptionBudget", "b") or {})
             .get("repairs") == 1)
    wait_for(lambda: _metric(operator, "hardening_repairs_total", namespace=namespace,
                             kind="PodDisruptionBudget") == 1.0)
    assert _metric(operator, "hardening_drift_detected_total", namespace=namespace,
                   kind="PodDisruptionBudget") == 1.0
    assert _metric(operator, "hardening_quarantined_pods", namespace=namespace) == 0.0


@pytest.mark.usefixtures("operator")
def test_logs_are_json_lines_that_name_the_object(cluster: Any, api: Any, operator: Any,
                                                  namespace: str) -> None:
    cluster.kubectl("apply", "-f", "-", input=to_yaml(profile("p", namespace, {
        "disruptionBudgets": [BUDGET]})))
    wait_for(lambda: is_ready(api, namespace, "p"))
    records = [json.loads(line) for line in operator.logs().splitlines() if line.strip()]
    assert all({"event", "level", "timestamp", "logger"} <= set(r) for r in records)
    applied = [r for r in records if r["event"].startswith("Applied PodDisruptionBudget")
               and r.get("namespace") == namespace]
    assert applied and applied[0]["name"] == "b" and applied[0]["kind"] == "PodDisruptionBudget"
