"""Shared fixtures: one real local control plane for the session, and the operator on it.

The operator runs as a separate process, exactly as ``hardening-operator run`` runs it,
so tests see what a user sees and can stop or kill it. Each test works in a namespace of
its own, which keeps tests independent while they share the control plane.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import STORE_CRD, Operator, admin_client, running_cluster, wait_established


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with running_cluster(tmp_path_factory.mktemp("control-plane")) as local:
        _wait_for_garbage_collection_of_profiles(local)
        yield local


def _wait_for_garbage_collection_of_profiles(local: Any) -> None:
    """Wait until the garbage collector cascades from HardeningProfiles.

    The garbage collector learns of new CRDs on a periodic re-discovery (every 30 s); until
    then children of a deleted profile would stay. A canary shows when it has.
    """
    import json
    import time

    local.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "hardening.plumbing.ai/v1alpha1", "kind": "HardeningProfile",
        "metadata": {"name": "gc-canary", "namespace": "default"}, "spec": {}}))
    uid = local.kubectl("get", "hardeningprofile", "gc-canary", "-n", "default",
                        "-o", "jsonpath={.metadata.uid}").stdout.strip()
    local.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "gc-canary", "namespace": "default", "ownerReferences": [{
            "apiVersion": "hardening.plumbing.ai/v1alpha1", "kind": "HardeningProfile",
            "name": "gc-canary", "uid": uid}]}}))
    local.kubectl("delete", "hardeningprofile", "gc-canary", "-n", "default")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if local.kubectl("get", "configmap", "gc-canary", "-n", "default",
                         "--ignore-not-found", "-o", "name").stdout.strip() == "":
            return
        time.sleep(0.5)
    raise RuntimeError("the garbage collector did not cascade from a HardeningProfile in 90 s")


@pytest.fixture(scope="session")
def api(cluster: Any) -> Any:
    """A ``kubernetes`` ApiClient with the admin's credentials."""
    return admin_client(cluster)


@pytest.fixture(scope="session")
def operator(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    """The operator, running cluster-wide for the whole session."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    runner = Operator(cluster.kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log",
                      args=["--metrics-address", f"127.0.0.1:{port}"])
    runner.metrics_url = f"http://127.0.0.1:{port}/metrics"
    runner.start()
    try:
        yield runner
    finally:
        runner.stop()
        errors = [line for line in runner.logs().splitlines() if '"level": "error"' in line
                  or '"level": "critical"' in line]
        if errors:
            sys.stderr.write("operator errors:\n" + "\n".join(errors[:20]) + "\n")


@pytest.fixture(scope="session")
def store_crd(cluster: Any, operator: Operator) -> None:
    """External Secrets Operator's SecretStore CRD, installed while the operator runs."""
    if not STORE_CRD.is_file():
        pytest.skip(f"the SecretStore CRD is not beside the checkout ({STORE_CRD})")
    cluster.kubectl("apply", "--server-side", "-f", str(STORE_CRD))
    wait_established(cluster, "secretstores.external-secrets.io")


@pytest.fixture
def namespace(api: Any) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards."""
    import kubernetes

    core = kubernetes.client.CoreV1Api(api)
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"name": name}}})
    try:
        yield name
    finally:
        core.delete_namespace(name)


