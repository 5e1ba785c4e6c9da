"""Find or build the binaries of the local control plane.

Release downloads are out of reach on the machines this project runs on, but the Go module
proxy is not, so the binaries are compiled from the very Go modules a release is tagged
from.  Two details make that work:

1. ``go install k8s.io/kubernetes/cmd/...@vX`` is refused, because the main module's
   ``go.mod`` maps every staging module (``k8s.io/api``, ``k8s.io/client-go``, ...) to a
   local ``./staging`` folder.  A throwaway module that requires ``k8s.io/kubernetes`` and
   replaces each of those staging modules with its published ``v0.Y.Z`` twin builds fine.
   The list of staging modules is read from the release's own ``go.mod``: it changes
   between releases.
2. The version is stamped with linker flags, so that ``/version`` reports the real release
   instead of ``v0.0.0-master``; API machinery and admission plugins compare it.

Binaries are cached outside the repository, keyed by version, so only the first start on a
machine pays for the build.  ``KUBEBUILDER_ASSETS`` (the envtest convention) wins over the
cache: a folder that already has ``etcd``, ``kube-apiserver`` and ``kubectl`` is used as is.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

KUBERNETES_VERSION = "v1.35.4"
ETCD_VERSION = "v3.6.16"

KUBERNETES_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kubectl")
REQUIRED_FROM_ASSETS = ("etcd", "kube-apiserver", "kubectl")


class BuildError(RuntimeError):
    """A binary could not be found or built; the message says which and why."""


@dataclass(frozen=True)
class Binaries:
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path | None
    kubectl: Path


def cache_root() -> Path:
    """Where built binaries live: ``$HARDENING_OPERATOR_CACHE`` or the XDG cache folder."""
    explicit = os.environ.get("HARDENING_OPERATOR_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "hardening-operator"


def ensure_binaries(*, progress: bool = True) -> Binaries:
    """Return the control plane binaries, building whatever is missing.

    With ``KUBEBUILDER_ASSETS`` set, its ``etcd``, ``kube-apiserver`` and ``kubectl`` are
    used.  envtest ships no ``kube-controller-manager``; one from the assets folder is used
    when present, and otherwise one is built, since garbage collection and namespace
    deletion depend on it.
    """
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        folder = Path(assets)
        missing = [name for name in REQUIRED_FROM_ASSETS if not (folder / name).is_file()]
        if missing:
            raise BuildError(f"KUBEBUILDER_ASSETS={folder} lacks {', '.join(missing)}")
        kcm = folder / "kube-controller-manager"
        if not kcm.is_file():
            kcm = _ensure_kubernetes(progress=progress) / "kube-controller-manager"
        return Binaries(
            etcd=folder / "etcd",
            kube_apiserver=folder / "kube-apiserver",
            kube_controller_manager=kcm,
            kubectl=folder / "kubectl",
        )
    k8s = _ensure_kubernetes(progress=progress)
    etcd = _ensure_etcd(progress=progress)
    return Binaries(
        etcd=etcd / "etcd",
        kube_apiserver=k8s / "kube-apiserver",
        kube_controller_manager=k8s / "kube-controller-manager",
        kubectl=k8s / "kubectl",
    )


def _ensure_kubernetes(*, progress: bool) -> Path:
    target = cache_root() / f"kubernetes-{KUBERNETES_VERSION}"
    if all((target / name).is_file() for name in KUBERNETES_COMMANDS):
        return target
    _require_go()
    major, minor, _ = KUBERNETES_VERSION.lstrip("v").split(".")
    staging_version = f"v0.{minor}.{KUBERNETES_VERSION.rsplit('.', 1)[1]}"
    with tempfile.TemporaryDirectory(prefix="hardening-operator-build-") as tmp:
        work = Path(tmp)
        _go(["mod", "init", "local/controlplane-build"], cwd=work, progress=progress)
        root_mod = _download_go_mod(f"k8s.io/kubernetes@{KUBERNETES_VERSION}", cwd=work)
        replaces = _staging_replaces(root_mod.read_text())
        if not replaces:
            raise BuildError(f"no staging replace directives in {root_mod}")
        for module in replaces:
            _go(
                ["mod", "edit", f"-replace={module}={module}@{staging_version}"],
                cwd=work,
                progress=False,
            )
        packages = [f"k8s.io/kubernetes/cmd/{name}" for name in KUBERNETES_COMMANDS]
        _go(
            ["get", *[f"{pkg}@{KUBERNETES_VERSION}" for pkg in packages]],
            cwd=work,
            progress=progress,
        )
        ldflags = _kubernetes_ldflags(major, minor)
        staged = work / "bin"
        for name, pkg in zip(KUBERNETES_COMMANDS, packages):
            _build(pkg, staged / name, ldflags=ldflags, cwd=work, progress=progress)
        _publish(staged, target)
    return target


def _ensure_etcd(*, progress: bool) -> Path:
    target = cache_root() / f"etcd-{ETCD_VERSION}"
    if (target / "etcd").is_file():
        return target
    _require_go()
    with tempfile.TemporaryDirectory(prefix="hardening-operator-build-") as tmp:
        work = Path(tmp)
        _go(["mod", "init", "local/etcd-build"], cwd=work, progress=progress)
        server_mod = _download_go_mod(f"go.etcd.io/etcd/server/v3@{ETCD_VERSION}", cwd=work)
        major = ETCD_VERSION.split(".")[0]  # "v3": only modules of that major line are real
        for module in _relative_replaces(server_mod.read_text()):
            if not module.endswith(f"/{major}"):
                continue
            _go(
                ["mod", "edit", f"-replace={module}={module}@{ETCD_VERSION}"],
                cwd=work,
                progress=False,
            )
        _go(["get", f"go.etcd.io/etcd/server/v3@{ETCD_VERSION}"], cwd=work, progress=progress)
        staged = work / "bin"
        _build("go.etcd.io/etcd/server/v3", staged / "etcd", ldflags="-s -w", cwd=work,
               progress=progress)
        _publish(staged, target)
    return target


def _kubernetes_ldflags(major: str, minor: str) -> str:
    stamp = {
        "gitVersion": KUBERNETES_VERSION,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {package}.{key}={value}" for key, value in stamp.items()]
    return " ".join(flags)


_REPLACE_LINE = re.compile(r"^\s*(?:replace\s+)?(\S+)\s*=>\s*(\.\.?/\S+)\s*$")


def _relative_replaces(go_mod: str) -> list[str]:
    """Modules that a ``go.mod`` maps to a folder of its own repository."""
    modules = []
    for line in go_mod.splitlines():
        match = _REPLACE_LINE.match(line)
        if match:
            modules.append(match.group(1))
    return modules


def _staging_replaces(go_mod: str) -> list[str]:
    return [m for m in _relative_replaces(go_mod) if m.startswith("k8s.io/")]


def _download_go_mod(module: str, *, cwd: Path) -> Path:
    out = _go(["mod", "download", "-json", module], cwd=cwd, progress=False, capture=True)
    info = json.loads(out)
    if info.get("Error"):
        raise BuildError(f"go mod download {module}: {info['Error']}")
    return Path(info["GoMod"])


def _build(package: str, output: Path, *, ldflags: str, cwd: Path, progress: bool) -> None:
    _say(f"building {output.name} from {package} (first start on this machine: many minutes)",
         progress)
    started = time.monotonic()
    _go(["build", "-trimpath", "-ldflags", ldflags, "-o", str(output), package],
        cwd=cwd, progress=progress)
    _say(f"built {output.name} in {time.monotonic() - started:.0f}s", progress)


def _publish(staged: Path, target: Path) -> None:
    """Move finished binaries into the cache at once, so a half build is never used."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + f".partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(staged, partial)
    if target.exists():
        shutil.rmtree(target)
    partial.rename(target)


def _require_go() -> None:
    if shutil.which("go") is None:
        raise BuildError(
            "Go is needed to build the local control plane (or set KUBEBUILDER_ASSETS "
            "to a folder with etcd, kube-apiserver and kubectl)"
        )


def _go(args: list[str], *, cwd: Path, progress: bool, capture: bool = False) -> str:
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=mod", GOWORK="off")
    if progress and not capture:
        _say("go " + " ".join(args), progress)
    proc = subprocess.run(
        ["go", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise BuildError(f"go {' '.join(args)} failed in {cwd}:\n{proc.stdout[-4000:]}")
    return proc.stdout


def _say(message: str, progress: bool) -> None:
    if progress:
        print(f"[control plane] {message}", file=sys.stderr, flush=True)
    logger.debug(message)
