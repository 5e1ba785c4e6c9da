"""The local control plane behaves like a real cluster where the operator depends on it.

Everything here runs the real binaries; nothing is mocked.  Most tests share one cluster,
since starting one takes seconds; those that stop, break or detach a cluster start their own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import hardening_operator
from hardening_operator.controlplane.binaries import KUBERNETES_VERSION, Binaries, ensure_binaries
from hardening_operator.controlplane.cluster import (
    COMPONENTS,
    ControlPlaneError,
    KubectlError,
    LocalCluster,
    down,
    up,
)

# Never pulled: there is no kubelet, and pods stay Pending.
IMAGE = "example.invalid/app:1"


@pytest.fixture(scope="module")
def binaries() -> Binaries:
    return ensure_binaries()


@pytest.fixture(scope="module")
def cluster(binaries: Binaries, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster.create(tmp_path_factory.mktemp("cluster"), binaries=binaries) as started:
        yield started


@pytest.fixture
def namespace(cluster: LocalCluster) -> str:
    name = f"test-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    return name


def test_server_reports_the_built_release(cluster: LocalCluster) -> None:
    version = json.loads(cluster.kubectl("get", "--raw", "/version").stdout)
    # The release that binaries.py builds (v1.35.4), not the v0.0.0 of an unstamped build.
    assert version["gitVersion"] == KUBERNETES_VERSION


def test_garbage_collection_deletes_dependents(cluster: LocalCluster, namespace: str) -> None:
    _assert_garbage_is_collected(cluster, namespace)


def test_namespace_deletion_finishes(cluster: LocalCluster, namespace: str) -> None:
    # Content makes the namespace controller work: it must delete it before finalizing.
    cluster.kubectl("create", "configmap", "content", "-n", namespace)
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")
    _wait_for(lambda: not _exists(cluster, "namespace", namespace),
              what=f"namespace {namespace} to be gone", timeout=60)


def test_service_account_token_authenticates(
    cluster: LocalCluster,
    namespace: str,
    tmp_path: Path,
) -> None:
    cluster.kubectl("create", "serviceaccount", "robot", "-n", namespace)
    token = cluster.kubectl("create", "token", "robot", "-n", namespace).stdout.strip()

    review = _whoami(cluster, token=token, tmp_path=tmp_path)
    assert review.returncode == 0, review.stderr
    user = json.loads(review.stdout)["status"]["userInfo"]
    assert user["username"] == f"system:serviceaccount:{namespace}:robot"

    # A token whose signature does not match is refused: the check above meant something.
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    refused = _whoami(cluster, token=forged, tmp_path=tmp_path)
    assert refused.returncode != 0
    assert "Unauthorized" in refused.stderr


def test_pods_are_admitted_and_stay_pending(cluster: LocalCluster, namespace: str) -> None:
    # The ServiceAccount admission plugin refuses pods until the namespace has its
    # ServiceAccount "default", which the controller manager creates.
    _wait_for(lambda: _exists(cluster, "serviceaccount", "default", "-n", namespace),
              what=f"the ServiceAccount {namespace}/default", timeout=30)
    # Privileged, which --allow-privileged=true permits outside Pod Security's reach.
    cluster.kubectl("apply", "-f", "-", input=json.dumps(_pod("app", namespace, privileged=True)))

    pod = _get(cluster, "pod", "app", "-n", namespace)
    assert pod["status"]["phase"] == "Pending"
    assert pod["spec"]["serviceAccountName"] == "default"
    assert any(volume["name"].startswith("kube-api-access-") for volume in pod["spec"]["volumes"])


def test_restricted_namespace_refuses_privileged_pod(cluster: LocalCluster, namespace: str) -> None:
    label = "pod-security.kubernetes.io/enforce=restricted"
    cluster.kubectl("label", "namespace", namespace, label)
    _wait_for(lambda: _exists(cluster, "serviceaccount", "default", "-n", namespace),
              what=f"the ServiceAccount {namespace}/default", timeout=30)

    refused = cluster.kubectl("apply", "-f", "-", check=False,
                              input=json.dumps(_pod("privileged", namespace, privileged=True)))
    assert refused.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in refused.stderr
    assert not _exists(cluster, "pod", "privileged", "-n", namespace)

    # A pod that meets the restricted profile is admitted in the same namespace.
    cluster.kubectl("apply", "-f", "-", input=json.dumps(_pod("compliant", namespace)))
    assert _exists(cluster, "pod", "compliant", "-n", namespace)


def test_restarts_keep_data_and_controllers_keep_working(
    cluster: LocalCluster,
    namespace: str,
) -> None:
    cluster.kubectl("create", "configmap", "kept", "-n", namespace, "--from-literal=key=value")

    cluster.restart_apiserver()
    assert _get(cluster, "configmap", "kept", "-n", namespace)["data"] == {"key": "value"}

    cluster.restart_etcd()
    assert _get(cluster, "configmap", "kept", "-n", namespace)["data"] == {"key": "value"}

    # The controller manager lived through both and still acts on new objects.
    _assert_garbage_is_collected(cluster, namespace)


def test_stop_leaves_no_process_behind(binaries: Binaries, tmp_path: Path) -> None:
    cluster = LocalCluster.create(tmp_path / "cluster", binaries=binaries)
    cluster.start()
    pids = cluster.pids
    assert sorted(pids) == sorted(COMPONENTS)

    cluster.stop()

    for name, pid in pids.items():
        assert not _pid_runs(pid), f"{name} (pid {pid}) still runs"
    assert _processes_using(cluster.workdir) == []
    assert cluster.pids == {}
    cluster.stop()  # Idempotent: a second stop finds nothing to do.


def test_components_end_when_python_is_killed(tmp_path: Path) -> None:
    # A test run killed outright never reaches its teardown; the cluster must end anyway.
    with subprocess.Popen(
        [sys.executable, "-c",
         "import json, pathlib, sys, time\n"
         "from hardening_operator.controlplane.cluster import LocalCluster\n"
         "cluster = LocalCluster.create(pathlib.Path(sys.argv[1]))\n"
         "cluster.start()\n"
         "print(json.dumps(cluster.pids), flush=True)\n"
         "time.sleep(600)\n",
         str(tmp_path / "cluster")],
        env={**os.environ, "PYTHONPATH": str(_package_root())},
        stdout=subprocess.PIPE,
        text=True,
    ) as starter:
        try:
            assert starter.stdout is not None
            pids: dict[str, int] = json.loads(starter.stdout.readline())
        finally:
            starter.kill()
    assert sorted(pids) == sorted(COMPONENTS)

    _wait_for(lambda: not any(_pid_runs(pid) for pid in pids.values()),
              what="the components of a killed Python to end", timeout=30)


def test_failing_component_is_named_with_its_log(binaries: Binaries, tmp_path: Path) -> None:
    cluster = LocalCluster.create(tmp_path / "cluster", binaries=binaries)
    cluster.extra_apiserver_args = ["--no-such-flag=1"]

    with pytest.raises(ControlPlaneError) as caught:
        cluster.start(timeout=30)

    log = cluster.log_path("kube-apiserver")
    assert caught.value.component == "kube-apiserver"
    assert caught.value.log == log
    assert "kube-apiserver" in str(caught.value)
    assert str(log) in str(caught.value)
    assert "unknown flag: --no-such-flag" in str(caught.value)
    # etcd, which had started fine, was stopped again.
    assert _processes_using(cluster.workdir) == []


def test_detached_cluster_outlives_its_starter(binaries: Binaries, tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    # Started by another Python process, which then exits.
    subprocess.run(
        [sys.executable, "-c",
         "import sys, pathlib\n"
         "from hardening_operator.controlplane.cluster import up\n"
         "up(pathlib.Path(sys.argv[1]))\n",
         str(state_dir)],
        env={**os.environ, "PYTHONPATH": str(_package_root())},
        check=True,
        timeout=120,
    )
    state = json.loads((state_dir / "state.json").read_text())
    pids: dict[str, int] = state["pids"]
    assert sorted(pids) == sorted(COMPONENTS)
    assert all(_pid_runs(pid) for pid in pids.values())

    reused = up(state_dir, binaries=binaries)
    assert reused.pids == pids
    assert reused.kubeconfig == Path(state["kubeconfig"])
    assert reused.kubectl("get", "namespace", "default").returncode == 0

    assert down(state_dir) is True
    assert not any(_pid_runs(pid) for pid in pids.values())
    assert not (state_dir / "workdir").exists()
    assert not (state_dir / "state.json").exists()
    assert down(state_dir) is False


def _assert_garbage_is_collected(cluster: LocalCluster, namespace: str) -> None:
    owner_name = f"owner-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "configmap", owner_name, "-n", namespace)
    owner = _get(cluster, "configmap", owner_name, "-n", namespace)
    dependent = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"{owner_name}-dependent",
            "namespace": namespace,
            "ownerReferences": [{
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "name": owner_name,
                "uid": owner["metadata"]["uid"],
            }],
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(dependent))

    cluster.kubectl("delete", "configmap", owner_name, "-n", namespace)
    _wait_for(lambda: not _exists(cluster, "configmap", f"{owner_name}-dependent", "-n", namespace),
              what=f"the dependent of {namespace}/{owner_name} to be collected", timeout=30)


def _pod(name: str, namespace: str, *, privileged: bool = False) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": IMAGE}
    pod_security: dict[str, Any] = {}
    if privileged:
        container["securityContext"] = {"privileged": True}
    else:
        container["securityContext"] = {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        }
        pod_security = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"securityContext": pod_security, "containers": [container]},
    }


def _whoami(
    cluster: LocalCluster,
    *,
    token: str,
    tmp_path: Path,
) -> subprocess.CompletedProcess[str]:
    # Not cluster.kubectl(): its kubeconfig carries the admin's client certificate, which
    # would authenticate the request before the token is even looked at.
    empty = tmp_path / "empty-kubeconfig"
    empty.write_text("apiVersion: v1\nkind: Config\n")
    return subprocess.run(
        [str(cluster.binaries.kubectl), f"--kubeconfig={empty}", f"--server={cluster.server}",
         f"--certificate-authority={cluster.certs.ca.cert}", f"--token={token}",
         "auth", "whoami", "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
    )


def _get(cluster: LocalCluster, *args: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)
    return result


def _exists(cluster: LocalCluster, *args: str) -> bool:
    try:
        cluster.kubectl("get", *args, "-o", "name")
    except KubectlError as error:
        if "NotFound" in error.stderr:
            return False
        raise
    return True


def _wait_for(condition: Callable[[], bool], *, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"Waited {timeout:.0f} s for {what}, in vain.")
        time.sleep(0.2)


def _package_root() -> Path:
    """The folder to put on another Python's path for it to import this package."""
    return Path(hardening_operator.__file__).resolve().parent.parent


def _pid_runs(pid: int) -> bool:
    """Whether a process runs; a zombie left for an indifferent init to reap does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _processes_using(folder: Path) -> list[int]:
    """Live processes whose command line mentions ``folder``: a cluster's leftovers."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(folder) in command and _pid_runs(int(entry.name)):
            found.append(int(entry.name))
    return found
