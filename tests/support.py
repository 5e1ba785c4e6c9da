"""Helpers for tests against the real control plane."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import yaml

REPO = Path(__file__).resolve().parent.parent
CRDS = REPO / "crds"
PROFILE_CRD = CRDS / "hardening.plumbing.ai_hardeningprofiles.yaml"
SAMPLES = REPO / "manifests" / "samples"
THIRD_PARTY_CRDS = REPO.parent / "shared" / "crds" / "third-party"
STORE_CRD = THIRD_PARTY_CRDS / "external-secrets.io_secretstores.yaml"

T = TypeVar("T")


def wait_for(check: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.1,
             what: str = "the condition") -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except AssertionError as exc:
            last = exc
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


class Operator:
    """The operator as a child process, with its log in a file."""

    def __init__(self, kubeconfig: Path, log: Path, *, extra_env: dict[str, str] | None = None,
                 args: list[str] | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.log = log
        self.env = dict(os.environ, KUBECONFIG=str(kubeconfig), **(extra_env or {}))
        self.args = args or []
        self.process: subprocess.Popen[bytes] | None = None
        self.metrics_url: str | None = None

    def start(self) -> None:
        assert self.process is None, "already running"
        handle = open(self.log, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hardening_operator.cli", "run", "--log-format", "json",
             *self.args],
            env=self.env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        handle.close()
        wait_for(lambda: b'"Activity \'login\' succeeded' in self.log.read_bytes()
                 or self._died(), timeout=30, what="the operator to log in")
        assert self.process.poll() is None, f"the operator exited; see {self.log}"

    def _died(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def kill(self) -> None:
        if self.process is None:
            return
        self.process.kill()
        self.process.wait()
        self.process = None

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


def wait_established(cluster: Any, crd: str, *, timeout: float = 60.0) -> None:
    """Wait until the API server serves a CRD (``kubectl wait`` fails while it has no status)."""
    import json

    def established() -> bool:
        found = cluster.kubectl("get", "crd", crd, "-o", "json", check=False)
        if found.returncode != 0:
            return False
        conditions = (json.loads(found.stdout).get("status") or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    wait_for(established, timeout=timeout, what=f"CRD {crd} to be established")


@contextlib.contextmanager
def running_cluster(workdir: Path) -> Iterator[Any]:
    """A local control plane with the HardeningProfile CRD served, stopped afterwards."""
    from hardening_operator.controlplane.cluster import LocalCluster

    local = LocalCluster.create(workdir)
    local.start(timeout=120)
    try:
        local.kubectl("apply", "--server-side", "-f", str(PROFILE_CRD))
        wait_established(local, "hardeningprofiles.hardening.plumbing.ai")
        yield local
    finally:
        local.stop()


def admin_client(cluster: Any) -> Any:
    """A ``kubernetes`` ApiClient with the cluster admin's credentials."""
    import kubernetes

    return kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))


def profile(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "hardening.plumbing.ai/v1alpha1",
        "kind": "HardeningProfile",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def to_yaml(*docs: dict[str, Any]) -> str:
    return yaml.safe_dump_all(docs)
