"""The image's promises, proven without a container engine: the operator as a wheel, run as
uid 1001 on a read-only root filesystem with only /tmp writable.

No Docker engine is at hand, so this test rebuilds what the Dockerfile does, step by step,
and runs the result in a bubblewrap sandbox that imposes what the StatefulSet imposes:

1. The wheel is built from a copy of exactly the files the Dockerfile copies, and installed
   the way the Dockerfile installs it: into a venv made without pip, by a pip outside it.
2. The sandbox mounts the whole filesystem read-only and puts an empty tmpfs on /tmp, like
   `readOnlyRootFilesystem: true` with an emptyDir at /tmp. The environment is the image's
   (HOME and TMPDIR at /tmp, no bytecode written) and /etc/passwd is the image's, with the
   user 1001 in it.
3. The process really is uid 1001 to the kernel, not just inside a user namespace: as root,
   bubblewrap sets up the mounts and `setpriv` then becomes 1001 for good, without any
   capability, so the operator cannot read what root's files hide (a probe checks that).
   Run by another user, bubblewrap maps that user to 1001 in a user namespace instead.
4. It talks to the test cluster with a copy of the kubeconfig that only 1001 may read, and
   must make a profile's NetworkPolicies and serve its liveness probe.

A shortcoming: when the session's operator (the ``operator`` fixture) also runs, either of
the two may create the NetworkPolicies first; they are the same code and write the same
objects. The sandboxed operator's own log and probe show that it ran without a fault.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from tests.e2e.helpers import is_ready
from tests.support import REPO, profile, to_yaml, wait_for

UID = GID = 1001
SANDBOX_HOSTNAME = "hardening-operator-sandbox"
#: The files the Dockerfile copies into its build stage.
BUILD_INPUTS = ("pyproject.toml", "README.md", "operator")

BWRAP = shutil.which("bwrap")
SETPRIV = shutil.which("setpriv")

pytestmark = pytest.mark.skipif(
    BWRAP is None,
    reason="bubblewrap (`bwrap`) is not installed; on Debian: apt-get install -y bubblewrap")


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    """A folder that uid 1001 may read: pytest's own tmp folders are private to root."""
    path = Path(tempfile.mkdtemp(prefix="hardening-operator-image-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def venv(workdir: Path) -> Path:
    """The wheel, built and installed as the Dockerfile does it; the venv's folder."""
    source = workdir / "src"
    source.mkdir()
    for name in BUILD_INPUTS:
        origin = REPO / name
        if origin.is_dir():
            shutil.copytree(origin, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(origin, source / name)
    wheels = workdir / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir",
          str(wheels), str(source)])
    (wheel,) = wheels.glob("hardening_operator-*.whl")

    target = workdir / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(target)])
    _run([sys.executable, "-m", "pip", "--python", str(target / "bin" / "python"), "install",
          "--quiet", "--disable-pip-version-check", str(wheel)])
    for tool in ("pip", "setuptools", "wheel"):
        found = _run([str(target / "bin" / "python"), "-c",
                      f"import importlib.util; print(importlib.util.find_spec({tool!r}))"])
        assert found.stdout.strip() == "None", f"{tool} is in the venv; the image has none"
    return target


@pytest.fixture(scope="module")
def sandbox(workdir: Path, venv: Path) -> list[str]:
    """The command prefix that runs a program as the image would run it."""
    _require_sandbox()
    etc = workdir / "etc"
    etc.mkdir(mode=0o755)
    # The image's accounts: root and the operator's user, as the Dockerfile's useradd has it.
    (etc / "passwd").write_text("root:x:0:0:root:/root:/usr/sbin/nologin\n"
                                f"hardening-operator:x:{UID}:{GID}::/tmp:/usr/sbin/nologin\n")
    (etc / "group").write_text(f"root:x:0:\nhardening-operator:x:{GID}:\n")
    for name in ("passwd", "group"):
        (etc / name).chmod(0o644)

    mounts = [
        "--ro-bind", "/", "/",
        "--perms", "1777", "--tmpfs", "/tmp",
        "--dev", "/dev",
        "--proc", "/proc",
        "--unshare-pid", "--unshare-ipc", "--unshare-uts",
        "--hostname", SANDBOX_HOSTNAME,
        "--ro-bind", str(workdir), str(workdir),
        "--ro-bind", str(etc / "passwd"), "/etc/passwd",
        "--ro-bind", str(etc / "group"), "/etc/group",
        "--chdir", str(venv),
    ]
    if os.geteuid() != 0:
        # Without privileges, bubblewrap maps the caller to 1001 in a user namespace.
        return [str(BWRAP), "--unshare-user", "--uid", str(UID), "--gid", str(GID), *mounts,
                "--"]
    # As root, bubblewrap makes the mounts with root's rights; then setpriv becomes 1001
    # for good, with no capabilities left and no way to gain any.
    return [str(BWRAP), *mounts, *_python_reachable(Path(sys.base_prefix)), "--",
            *_drop_to_1001()]


@pytest.fixture(scope="module")
def kubeconfig(cluster: Any, workdir: Path) -> Path:
    """The cluster's kubeconfig, readable by uid 1001 and nobody else."""
    path = workdir / "kubeconfig"
    shutil.copy(cluster.kubeconfig, path)
    path.chmod(0o600)
    if os.geteuid() == 0:
        os.chown(path, UID, GID)
    return path


def _image_env(venv: Path, **extra: str) -> dict[str, str]:
    """The environment the Dockerfile sets, and nothing from the test's own."""
    return {
        "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        **extra,
    }


def test_the_sandbox_is_uid_1001_on_a_read_only_root(sandbox: list[str], venv: Path,
                                                     kubeconfig: Path) -> None:
    probe = (
        "import json, os, pathlib\n"
        "def writable(path):\n"
        "    try:\n"
        "        pathlib.Path(path).write_text('x')\n"
        "    except OSError as exc:\n"
        "        return exc.strerror\n"
        "    return True\n"
        "def readable(path):\n"
        "    try:\n"
        "        pathlib.Path(path).read_bytes()\n"
        "    except OSError as exc:\n"
        "        return exc.strerror\n"
        "    return True\n"
        "print(json.dumps({'uid': os.getuid(), 'gid': os.getgid(),\n"
        f"    'venv': writable({str(venv / 'probe')!r}), 'etc': writable('/etc/probe'),\n"
        "    'tmp': writable('/tmp/probe'), 'shadow': readable('/etc/shadow'),\n"
        f"    'kubeconfig': readable({str(kubeconfig)!r})}}))\n"
    )
    found = _run([*sandbox, str(venv / "bin" / "python"), "-c", probe], env=_image_env(venv))
    seen = json.loads(found.stdout)
    assert (seen["uid"], seen["gid"]) == (UID, GID)
    assert seen["tmp"] is True and seen["kubeconfig"] is True
    assert seen["venv"] == seen["etc"] == "Read-only file system"
    if os.geteuid() == 0:
        # Really 1001 to the kernel: root's files stay closed, as in a container.
        assert seen["shadow"] == "Permission denied"


def test_the_installed_operator_runs_as_uid_1001_on_a_read_only_root(
        sandbox: list[str], venv: Path, kubeconfig: Path, api: Any, cluster: Any,
        namespace: str, workdir: Path) -> None:
    liveness, metrics = _free_port(), _free_port()
    log = workdir / "operator.log"
    # The image's default arguments, plus the metrics the StatefulSet turns on.
    command = [*sandbox, str(venv / "bin" / "hardening-operator"), "run",
               "--liveness", f"http://127.0.0.1:{liveness}/healthz",
               "--metrics-address", f"127.0.0.1:{metrics}", "--log-format", "json"]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=_image_env(venv, KUBECONFIG=str(kubeconfig)),
                                   stdout=sink, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        wait_for(lambda: "Activity 'login' succeeded" in log.read_text() or
                 process.poll() is not None, timeout=60, what="the operator to log in")
        assert process.poll() is None, f"the operator exited:\n{log.read_text()}"

        cluster.kubectl("apply", "-f", "-", input=to_yaml(profile("sandboxed", namespace, {
            "networkPolicy": {"defaultDeny": True, "allowDNS": True, "rules": [{
                "name": "web",
                "podSelector": {"matchLabels": {"app": "web"}},
                "ingress": [{"ports": [{"port": 8080}]}],
            }]},
        })))
        with _quoting(log):
            wait_for(lambda: {"default-deny", "allow-dns", "web"} <= _policies(api, namespace),
                     timeout=30, what="the profile's NetworkPolicies")
            wait_for(lambda: is_ready(api, namespace, "sandboxed"), timeout=30,
                     what="the profile to be Ready")

        for path, port in (("/healthz", liveness), ("/metrics", metrics)):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
                assert reply.status == 200, path
        assert process.poll() is None, f"the operator exited:\n{log.read_text()}"
    finally:
        _stop(process)

    faults = [line for line in log.read_text().splitlines()
              if any(word in line for word in ("Read-only file system", "Permission denied",
                                               "Traceback", '"level": "error"',
                                               '"level": "critical"'))]
    assert not faults, "\n".join(faults)
    assert "Activity 'cleanup' succeeded" in log.read_text(), "no clean shutdown on SIGTERM"


# --------------------------------------------------------------------------------------------


def _require_sandbox() -> None:
    """Skip, saying why, when this machine cannot give the sandbox the test needs."""
    if os.geteuid() == 0:
        if SETPRIV is None:
            pytest.skip("setpriv (util-linux) is needed to drop from root to uid 1001")
        trial = [str(BWRAP), "--ro-bind", "/", "/", "--", *_drop_to_1001(), "true"]
    else:
        trial = [str(BWRAP), "--ro-bind", "/", "/", "--unshare-user", "--uid", str(UID),
                 "--gid", str(GID), "true"]
    found = subprocess.run(trial, capture_output=True, text=True, check=False)
    if found.returncode != 0:
        pytest.skip(f"bubblewrap cannot make its sandbox here: {found.stderr.strip()}")


def _drop_to_1001() -> list[str]:
    return [str(SETPRIV), f"--reuid={UID}", f"--regid={GID}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]


def _python_reachable(prefix: Path) -> list[str]:
    """Sandbox arguments that let uid 1001 reach the Python installation at ``prefix``.

    The venv's interpreter is a link into the Python it was made from. A Python installed
    under a private home (pyenv under /root) sits behind a folder that uid 1001 may not
    enter: a tmpfs over that folder, with the installation bound back into it, opens the
    installation and nothing else of the home.
    """
    prefix = prefix.resolve()
    for closed in reversed(prefix.parents):
        if closed != Path("/") and not closed.stat().st_mode & stat.S_IXOTH:
            break
    else:
        return []
    arguments = ["--perms", "0755", "--tmpfs", str(closed)]
    for between in reversed(prefix.parents):
        if between.is_relative_to(closed) and between != closed:
            arguments += ["--perms", "0755", "--dir", str(between)]
    return [*arguments, "--ro-bind", str(prefix), str(prefix)]


@contextlib.contextmanager
def _quoting(log: Path) -> Iterator[None]:
    """Add the operator's log to an assertion that fails inside."""
    try:
        yield
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nThe sandboxed operator's log:\n{log.read_text()}") from None


def _policies(api: Any, namespace: str) -> set[str]:
    found: Any = kubernetes.client.NetworkingV1Api(api).list_namespaced_network_policy(namespace)
    return {item.metadata.name for item in found.items}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the sandbox's process group, as a kubelet would; SIGKILL if it lingers.

    bubblewrap itself dies of the SIGTERM at once, while the operator, in the same process
    group, shuts down in its own time: the group is waited for, not bubblewrap.
    """
    group = process.pid
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        return
    finally:
        process.wait()
    try:
        wait_for(lambda: not _group_alive(group), timeout=20,
                 what="the sandboxed operator to exit")
    except AssertionError:
        os.killpg(group, signal.SIGKILL)
        raise


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def _run(command: list[str], *, env: dict[str, str] | None = None,
         ) -> subprocess.CompletedProcess[str]:
    found = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert found.returncode == 0, (
        f"{' '.join(command)} exited with {found.returncode}:\n{found.stdout}\n{found.stderr}")
    return found
