"""Two replicas with Kopf peering: one acts, the other takes over when it dies.

This module runs a control plane and operators of its own: the session's operator is
standalone and would act beside the replicas.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from tests.e2e.helpers import is_ready
from tests.support import (
    REPO,
    Operator,
    admin_client,
    profile,
    running_cluster,
    to_yaml,
    wait_established,
    wait_for,
)

PEERING = REPO / "manifests" / "peering.yaml"
LIFETIME = 10


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with running_cluster(tmp_path_factory.mktemp("peering")) as local:
        docs = list(yaml.safe_load_all(PEERING.read_text()))
        local.kubectl("apply", "--server-side", "-f", "-",
                      input=to_yaml(*[d for d in docs if d["kind"] == "CustomResourceDefinition"]))
        wait_established(local, "clusterkopfpeerings.kopf.dev")
        local.kubectl("apply", "--server-side", "-f", "-",
                      input=to_yaml(*[d for d in docs if d["kind"] == "ClusterKopfPeering"]))
        yield local


@pytest.fixture(scope="module")
def api(cluster: Any) -> Any:
    return admin_client(cluster)


def _replica(cluster: Any, log: Path, priority: int) -> Operator:
    return Operator(cluster.kubeconfig, log, args=[
        "--peering", "hardening-operator", "--priority", str(priority),
        "--peering-lifetime", str(LIFETIME)])


def _writes(runner: Operator) -> int:
    return runner.logs().count('"Applied ')


def test_the_standby_takes_over_when_the_active_replica_dies(
        cluster: Any, api: Any, tmp_path: Path) -> None:
    core = kubernetes.client.CoreV1Api(api)
    active = _replica(cluster, tmp_path / "active.log", priority=200)
    standby = _replica(cluster, tmp_path / "standby.log", priority=100)
    active.start()
    standby.start()
    try:
        custom = kubernetes.client.CustomObjectsApi(api)
        wait_for(lambda: len((custom.get_cluster_custom_object(
            "kopf.dev", "v1", "clusterkopfpeerings", "hardening-operator").get("status") or {}))
            == 2, timeout=30, what="both replicas to announce themselves")
        core.create_namespace({"metadata": {"name": "one"}})
        cluster.kubectl("apply", "-f", "-", input=to_yaml(profile("p", "one", {
            "networkPolicy": {}})))
        wait_for(lambda: is_ready(api, "one", "p"), timeout=20)
        assert _writes(active) > 0
        assert _writes(standby) == 0, "the paused replica wrote"

        active.kill()
        killed = time.monotonic()
        core.create_namespace({"metadata": {"name": "two"}})
        cluster.kubectl("apply", "-f", "-", input=to_yaml(profile("p", "two", {
            "networkPolicy": {}})))
        wait_for(lambda: is_ready(api, "two", "p"), timeout=LIFETIME + 30,
                 what="the standby to take over")
        failover = time.monotonic() - killed
        print(f"failover: {failover:.1f}s with a peering lifetime of {LIFETIME}s")
        assert failover <= LIFETIME + 30
        assert _writes(standby) > 0
    finally:
        active.stop()
        standby.stop()
