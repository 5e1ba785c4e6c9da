"""Reading profiles, children and metrics in end-to-end tests."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import kubernetes

GROUP, VERSION, PLURAL = "hardening.plumbing.ai", "v1alpha1", "hardeningprofiles"


def get_profile(api: Any, namespace: str, name: str) -> dict[str, Any]:
    return kubernetes.client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name)


def condition(body: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in (body.get("status") or {}).get("conditions", []):
        if cond["type"] == kind:
            return cond
    return None


def is_ready(api: Any, namespace: str, name: str) -> bool:
    body = get_profile(api, namespace, name)
    if (body.get("status") or {}).get("observedGeneration") != body["metadata"]["generation"]:
        return False
    ready = condition(body, "Ready")
    return ready is not None and ready["status"] == "True"


def child_status(api: Any, namespace: str, name: str, kind: str,
                 child: str) -> dict[str, Any] | None:
    body = get_profile(api, namespace, name)
    for entry in (body.get("status") or {}).get("children", []):
        if entry["kind"] == kind and entry["name"] == child:
            return entry
    return None


def write_requests(metrics: str, resources: set[str]) -> Counter[str]:
    """The API server's counts of mutating requests on these resources, from /metrics."""
    total: Counter[str] = Counter()
    for line in metrics.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if labels.get("verb") in {"GET", "LIST", "WATCH", "CONNECT"}:
            continue
        if labels.get("resource") in resources:
            key = f"{labels['verb']} {labels['resource']} {labels.get('subresource', '')}".strip()
            total[key] += int(float(line.rsplit(" ", 1)[1]))
    return total
