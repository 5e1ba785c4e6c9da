"""``make run``: a local control plane, the CRDs, the samples and the operator, in one go.

It never touches the cluster that the user's own kubeconfig points at: the control plane
is started here, the operator is pointed at its kubeconfig explicitly, and the line printed
for a second terminal names that kubeconfig too. Ctrl-C stops the operator and the control
plane, and removes the control plane's data.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from hardening_operator.controlplane.binaries import ensure_binaries
from hardening_operator.controlplane.cluster import LocalCluster

_REPO_HINTS = ("crds", "manifests")


def _repo_root() -> Path:
    here = Path.cwd()
    for candidate in (here, *here.parents):
        if all((candidate / hint).is_dir() for hint in _REPO_HINTS):
            return candidate
    raise SystemExit("Run this from the hardening-operator checkout (it needs crds/ and "
                     "manifests/samples/).")


def _wait_until_served(cluster: LocalCluster, *, timeout: float = 60.0) -> None:
    """Wait until every CRD is established, so that the samples find their kinds."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = json.loads(cluster.kubectl("get", "crd", "-o", "json").stdout)["items"]
        if items and all(
            any(c["type"] == "Established" and c["status"] == "True"
                for c in (crd.get("status") or {}).get("conditions") or [])
            for crd in items
        ):
            return
        time.sleep(0.2)
    raise SystemExit("The CRDs were not established within a minute.")


def main() -> int:
    root = _repo_root()
    binaries = ensure_binaries(progress=True)
    cluster = LocalCluster.create(binaries=binaries)
    print("[dev] starting the local control plane ...", file=sys.stderr, flush=True)
    cluster.start(timeout=120)
    operator: subprocess.Popen[bytes] | None = None
    try:
        cluster.kubectl("apply", "--server-side", "-f",
                        str(root / "crds" / "hardening.plumbing.ai_hardeningprofiles.yaml"))
        # In a checkout beside the project's shared folder, External Secrets Operator's
        # SecretStore CRD is at hand: with it the sample's secret store is applied too.
        third_party = root.parent / "shared" / "crds" / "third-party"
        store_crd = third_party / "external-secrets.io_secretstores.yaml"
        if store_crd.is_file():
            cluster.kubectl("apply", "--server-side", "-f", str(store_crd))
        _wait_until_served(cluster)
        cluster.kubectl("apply", "-f", str(root / "manifests" / "samples"))
        kubectl_dir = binaries.kubectl.parent
        print(
            "\n[dev] The operator runs below. In a second terminal:\n\n"
            f"    export KUBECONFIG={cluster.kubeconfig} PATH={kubectl_dir}:$PATH\n"
            "    kubectl get hardeningprofiles,networkpolicies -A\n\n"
            "[dev] Ctrl-C stops the operator and the control plane.\n",
            file=sys.stderr, flush=True)
        env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig))
        operator = subprocess.Popen(
            [sys.executable, "-m", "hardening_operator.cli", "run", "--log-format", "console"],
            env=env)
        return operator.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if operator is not None and operator.poll() is None:
            operator.send_signal(signal.SIGINT)
            try:
                operator.wait(timeout=20)
            except subprocess.TimeoutExpired:
                operator.kill()
        print("[dev] stopping the local control plane ...", file=sys.stderr, flush=True)
        cluster.stop()
        if cluster.workdir.exists():
            import shutil

            shutil.rmtree(cluster.workdir, ignore_errors=True)
