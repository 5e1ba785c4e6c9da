"""External Secrets Operator installed after the operator: stores follow, with no restart.

This module has a control plane and an operator of its own: the session's cluster may have
the SecretStore CRD already.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from tests.e2e.helpers import child_status, condition, get_profile, is_ready
from tests.support import (
    STORE_CRD,
    Operator,
    admin_client,
    profile,
    running_cluster,
    to_yaml,
    wait_for,
)

STORE = {"name": "aws-secrets-manager", "provider": {"aws": {
    "service": "SecretsManager", "region": "us-west-2",
    "auth": {"jwt": {"serviceAccountRef": {"name": "external-secrets-sa"}}}}}}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not STORE_CRD.is_file():
        pytest.skip(f"the SecretStore CRD is not beside the checkout ({STORE_CRD})")
    with running_cluster(tmp_path_factory.mktemp("late-crd")) as local:
        yield local


@pytest.fixture(scope="module")
def api(cluster: Any) -> Any:
    return admin_client(cluster)


def test_stores_are_applied_once_the_crd_appears(cluster: Any, api: Any,
                                                 tmp_path: Path) -> None:
    runner = Operator(cluster.kubeconfig, tmp_path / "operator.log")
    runner.start()
    try:
        kubernetes.client.CoreV1Api(api).create_namespace({"metadata": {"name": "apps"}})
        cluster.kubectl("apply", "-f", "-", input=to_yaml(profile("p", "apps", {
            "secretStores": [STORE],
            "disruptionBudgets": [{"name": "b", "maxUnavailable": "25%",
                                   "selector": {"matchLabels": {"app": "a"}}}],
        })))

        def pending() -> bool:
            entry = child_status(api, "apps", "p", "SecretStore", "aws-secrets-manager") or {}
            return entry.get("state") == "Pending"

        wait_for(pending, what="the store to wait for its API")
        body = get_profile(api, "apps", "p")
        assert condition(body, "Ready")["reason"] == "Pending"
        assert "SecretStore/aws-secrets-manager" in condition(body, "Ready")["message"]
        # The rest of the profile does not wait.
        assert kubernetes.client.PolicyV1Api(api).read_namespaced_pod_disruption_budget("b", "apps")

        cluster.kubectl("apply", "--server-side", "-f", str(STORE_CRD))
        wait_for(lambda: is_ready(api, "apps", "p"), timeout=30,
                 what="the profile to be Ready once the CRD is served")
        store = kubernetes.client.CustomObjectsApi(api).get_namespaced_custom_object(
            "external-secrets.io", "v1", "apps", "secretstores", "aws-secrets-manager")
        aws = store["spec"]["provider"]["aws"]
        assert (aws["service"], aws["region"], aws["auth"]) == (
            "SecretsManager", "us-west-2", STORE["provider"]["aws"]["auth"])
        assert runner.process is not None and runner.process.poll() is None
    finally:
        runner.stop()
