"""A real Kubernetes control plane on this machine: etcd, kube-apiserver, kube-controller-manager.

The operator's behaviour hangs on what the API server and the controllers around it do:
Pod Security admission, RBAC, ownerReferences and garbage collection, namespace
finalization, ServiceAccount tokens.  A fake reproduces none of these faithfully, so tests
and a developer's ``make run`` talk to the real thing.  This is the envtest idea taken one
step further: envtest runs etcd and kube-apiserver only, so nothing ever collects garbage,
deleted namespaces stay Terminating forever, and no ``default`` ServiceAccount appears, which
makes the ServiceAccount admission plugin refuse every pod.  A controller manager with a
short, explicit list of controllers fixes exactly those, for under a second more at start.

What is left out on purpose: there is no kubelet and no scheduler, so pods are admitted and
then stay Pending forever; and no node, cloud, volume or workload controllers, since there
is nothing for them to act on.

The life of a cluster:

1. ``LocalCluster.create()`` prepares a fresh work folder (certificates, kubeconfigs, free
   ports) and starts nothing, so that a caller can still add flags.
2. ``start()`` launches etcd, then the API server once etcd answers, then the controller
   manager once the API server is ready, and returns when the controllers have visibly done
   their first work.  Any failure names the component and its log, and stops the rest.
3. ``stop()`` ends the processes in the reverse order, politely first.  A Python that exits
   or dies without calling it still takes its components along (an exit hook, and on Linux
   a signal the kernel sends when their parent dies).
4. ``up()`` and ``down()`` do the same for a shell: the processes outlive the Python process
   that started them, and a state file lets a later ``up`` reuse them and ``down`` end them.

Choices that look odd:

1. ``--use-service-account-credentials=true`` for the controller manager.  Its own role,
   ``system:kube-controller-manager``, may only read everything and mint credentials; the
   rights to delete garbage or a namespace's content belong to the per-controller
   ``system:controller:*`` roles.  With its own credentials, garbage collection and namespace
   deletion would be refused by RBAC.  kubeadm runs it the same way.
2. The resource quota controller is among the few controllers: without it, a namespace
   with a ResourceQuota refuses every pod, because the quota's usage is never computed.
3. Free ports are found by binding port 0 and letting go of it at once.  Another process
   could take such a port in between; it is unlikely enough on a developer's machine that
   retrying is not worth its complexity, and the failure would name the component.
4. etcd speaks plain HTTP: it listens on loopback only and the API server is its one client.
   The API server's serving certificate is issued by the cluster CA and verified by every
   client; the controller manager serves a certificate it signs itself, which only the
   health probe ever sees, so that probe alone skips verification.
5. The API server advertises 127.0.0.1, the only address at which it can be reached here,
   and does not maintain the endpoints of the ``kubernetes`` Service: the API refuses a
   loopback address there, and the failing update would be logged every ten seconds.  The
   Service itself exists, with its usual cluster IP; no pod runs that could call it.
6. The API server is set up as a front proxy (the ``--requestheader-*`` flags) although no
   aggregated API server exists: the controller manager's delegated authentication reads
   that setup from the cluster, and logs an error again and again when it is missing.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import datetime
import fcntl
import http.client
import ipaddress
import json
import logging
import os
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypedDict

import yaml

from hardening_operator.controlplane.binaries import Binaries, cache_root, ensure_binaries
from hardening_operator.controlplane.certs import (
    ADMIN_USER,
    CONTROLLER_MANAGER_USER,
    FRONT_PROXY_USER,
    ClusterCertificates,
    KeyPair,
    certificate_paths,
    write_cluster_certificates,
)

__all__ = [
    "COMPONENTS",
    "CONTEXT",
    "ControlPlaneError",
    "KubectlError",
    "LocalCluster",
    "Ports",
    "default_state_dir",
    "down",
    "up",
]

logger = logging.getLogger(__name__)

ETCD = "etcd"
KUBE_APISERVER = "kube-apiserver"
KUBE_CONTROLLER_MANAGER = "kube-controller-manager"

COMPONENTS = (ETCD, KUBE_APISERVER, KUBE_CONTROLLER_MANAGER)
"""The components in the order they start; they stop in the reverse order."""

CONTEXT = "hardening-local"
"""The name of the cluster, the context and the current context in the kubeconfig files."""

SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
"""Where Services get their cluster IPs; its first address is the ``kubernetes`` Service's."""

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
"""The issuer of ServiceAccount tokens, and their default audience: a real cluster's default."""

CONTROLLERS = (
    "serviceaccount-token-controller",
    "serviceaccount-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "resourcequota-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",
)
"""The controllers that kube-controller-manager runs.  Besides those the module docstring
explains, the root CA publisher puts ``kube-root-ca.crt`` into every namespace and the
aggregation controller fills the ``admin``/``edit``/``view`` roles, as in any real cluster.
``extra_controller_manager_args=["--controllers=..."]`` replaces the list."""

ETCD_QUOTA_BYTES = 8 * 1024**3
"""The size at which etcd refuses writes: 8 GiB, its documented maximum, since the default
of 2 GiB can be reached by long load tests; the database file grows only as data comes."""

STOP_GRACE = 10.0
"""Seconds a component has to exit after SIGTERM before it gets SIGKILL.  The API server
takes about 2 s; etcd takes up to 7 s while the API server still watches it (its request
timeout), which only a restart of etcd alone runs into; ten is ample for both."""

_KILL_WAIT = 5.0
"""Seconds to wait for a process to vanish after SIGKILL, which it cannot refuse."""

_POLL_INTERVAL = 0.1
"""Seconds between two readiness probes: short, since the whole start takes seconds."""

_PROBE_TIMEOUT = 2.0
"""Seconds one readiness probe may take; a component that is up answers in milliseconds."""

_LOG_TAIL_LINES = 25
"""How many of a component's last log lines an error message quotes."""

_STATE_FILE = "state.json"
_STATE_VERSION = 1


class ControlPlaneError(RuntimeError):
    """A component failed to start, died or did not become ready in time.

    The message names the component and the path of its log; ``component`` and ``log``
    carry the same for code that wants to show or attach the log.
    """

    def __init__(self, message: str, *, component: str, log: Path | None) -> None:
        super().__init__(message)
        self.component = component
        self.log = log


class KubectlError(subprocess.CalledProcessError):
    """``kubectl`` exited with an error; unlike its base class, ``str()`` shows stderr."""

    def __str__(self) -> str:
        command = shlex.join(str(arg) for arg in self.cmd)
        stderr = (self.stderr or "").strip()
        return f"{command} exited with code {self.returncode}: {stderr}"


@dataclass(frozen=True)
class Ports:
    """The loopback ports of one cluster, fixed for its whole life, restarts included."""

    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int


class _State(TypedDict):
    """The state file of a detached cluster (see ``up``)."""

    version: int
    workdir: str
    kubeconfig: str
    server: str
    ports: dict[str, int]
    pids: dict[str, int]
    binaries: dict[str, str]


@dataclass(eq=False)
class LocalCluster:
    """One local control plane: its files, its ports and, once started, its processes.

    Build it with ``create()``.  ``extra_apiserver_args`` and
    ``extra_controller_manager_args`` may be changed until ``start()``, and are used again
    by each restart.  A flag given there replaces the one this module would pass, whether it
    holds one value or a list; flags of the ``--name=value`` form are recognised so.
    """

    workdir: Path
    kubeconfig: Path
    server: str
    binaries: Binaries
    certs: ClusterCertificates
    ports: Ports
    extra_apiserver_args: list[str] = field(default_factory=list)
    extra_controller_manager_args: list[str] = field(default_factory=list)
    _processes: dict[str, _Process] = field(default_factory=dict, init=False, repr=False)
    _detached: bool = field(default=False, init=False, repr=False)
    _owns_workdir: bool = field(default=False, init=False, repr=False)
    _state_file: Path | None = field(default=None, init=False, repr=False)

    @classmethod
    def create(
        cls,
        workdir: Path | None = None,
        *,
        binaries: Binaries | None = None,
    ) -> LocalCluster:
        """Prepare a cluster in ``workdir``, which must be empty or absent; start nothing.

        Without ``workdir``, a new temporary folder is made, and removed again when the
        cluster is used as a context manager and the block ends without an error (see
        ``__exit__``).  Without ``binaries``, they are found or built by ``ensure_binaries()``.
        """
        if binaries is None:
            binaries = ensure_binaries()
        if binaries.kube_controller_manager is None:
            raise ControlPlaneError(
                "No kube-controller-manager binary was found, and the control plane needs "
                "one for garbage collection, namespace deletion and service accounts.",
                component=KUBE_CONTROLLER_MANAGER,
                log=None,
            )
        owns_workdir = workdir is None
        if workdir is None:
            workdir = Path(tempfile.mkdtemp(prefix="hardening-operator-cluster-"))
        elif workdir.exists() and any(workdir.iterdir()):
            raise ValueError(f"A new cluster needs an empty work folder; {workdir} is not.")
        workdir.mkdir(parents=True, exist_ok=True)
        # Absolute, since the components run in it and get its paths in their flags.
        workdir = workdir.resolve()
        (workdir / "logs").mkdir()

        network = ipaddress.ip_network(SERVICE_CLUSTER_IP_RANGE)
        certs = write_cluster_certificates(workdir / "certs", service_ip=str(network[1]))
        etcd_client, etcd_peer, apiserver, controller_manager = _free_ports(4)
        ports = Ports(
            etcd_client=etcd_client,
            etcd_peer=etcd_peer,
            apiserver=apiserver,
            controller_manager=controller_manager,
        )
        server = f"https://127.0.0.1:{ports.apiserver}"
        kubeconfig = workdir / "kubeconfig"
        _write_kubeconfig(kubeconfig, server=server, ca=certs.ca.cert, user=ADMIN_USER,
                          client=certs.admin)
        _write_kubeconfig(workdir / f"{KUBE_CONTROLLER_MANAGER}.kubeconfig", server=server,
                          ca=certs.ca.cert, user=CONTROLLER_MANAGER_USER,
                          client=certs.controller_manager)
        cluster = cls(
            workdir=workdir,
            kubeconfig=kubeconfig,
            server=server,
            binaries=binaries,
            certs=certs,
            ports=ports,
        )
        cluster._owns_workdir = owns_workdir
        logger.debug("Prepared a local cluster in %s; it will serve at %s.", workdir, server)
        return cluster

    @property
    def pids(self) -> dict[str, int]:
        """The process ids of the components that this object started or adopted."""
        return {name: process.pid for name, process in self._processes.items()}

    def log_path(self, component: str) -> Path:
        """The log file of a component, one of ``COMPONENTS``; restarts append to it."""
        if component not in COMPONENTS:
            raise ValueError(f"Unknown component {component!r}; known are {', '.join(COMPONENTS)}.")
        return self.workdir / "logs" / f"{component}.log"

    def start(self, *, timeout: float = 60.0) -> None:
        """Start all components and return once the cluster is usable, or raise.

        Usable means: the API server's ``/readyz`` passes, the controller manager's
        ``/healthz`` passes, the namespace ``default`` exists, and its ServiceAccount
        ``default`` exists, which shows that the controllers run with working credentials
        and that pods can be admitted.  ``timeout`` (seconds) covers all of it.  On failure
        every component started so far is stopped, and ``ControlPlaneError`` names the one
        that failed and its log.
        """
        self._start(timeout=timeout, detached=False)

    def stop(self) -> None:
        """Stop every component (SIGTERM, then SIGKILL after ``STOP_GRACE``), and wait.

        Calling it again, or on a cluster that never started, does nothing.  The work folder
        and its logs stay; see ``__exit__`` for when a temporary one is removed.
        """
        stopped = bool(self._processes)
        for name in reversed(COMPONENTS):
            process = self._processes.pop(name, None)
            if process is not None:
                process.stop(grace=STOP_GRACE)
        _running.discard(self)
        if stopped:
            logger.info("The local cluster in %s has stopped.", self.workdir)

    def restart_apiserver(self, *, timeout: float = 60.0) -> None:
        """Stop kube-apiserver and start it again with the same port, certificates and etcd.

        Returns once ``/readyz`` passes again.  Data survives, since it lives in etcd.
        """
        self._restart(KUBE_APISERVER, timeout=timeout)

    def restart_etcd(self, *, timeout: float = 60.0) -> None:
        """Stop etcd and start it again on the same data folder and ports.

        Returns once etcd is healthy and the API server, which reconnects by itself, passes
        ``/readyz`` again.
        """
        self._restart(ETCD, timeout=timeout)

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run the cluster's kubectl as the admin user, and capture what it prints.

        ``input`` is fed to its stdin (for ``apply -f -``).  With ``check``, a non-zero exit
        raises ``KubectlError``, whose message includes kubectl's stderr.
        """
        command = [
            str(self.binaries.kubectl),
            f"--kubeconfig={self.kubeconfig}",
            # Discovery is cached per server address; a folder of the cluster's own keeps
            # ports reused by later clusters from reading a stale cache in the user's home.
            f"--cache-dir={self.workdir / 'kubectl-cache'}",
            *args,
        ]
        result = subprocess.run(command, input=input, capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, command, result.stdout, result.stderr)
        return result

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the cluster; remove its work folder if ``create()`` made it and all went well.

        After an error, the folder is kept for its logs, and its path is logged.  A Ctrl-C
        or a ``sys.exit()`` is no error of the cluster's, and keeps nothing.
        """
        self.stop()
        if not self._owns_workdir:
            return
        if isinstance(exc, Exception):
            logger.warning("The work folder %s is kept for its logs.", self.workdir)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _start(self, *, timeout: float, detached: bool) -> None:
        if self._processes:
            raise RuntimeError(f"The local cluster in {self.workdir} has already started.")
        self._detached = detached
        started = time.monotonic()
        deadline = started + timeout
        if not detached:
            _running.add(self)
        try:
            self._launch(ETCD)
            self._await(ETCD, "become healthy", self._probe_etcd, deadline=deadline)
            self._launch(KUBE_APISERVER)
            self._await(KUBE_APISERVER, "become ready", self._probe_apiserver, deadline=deadline)
            self._await(KUBE_APISERVER, "create the namespace default",
                        self._probe_default_namespace, deadline=deadline)
            # Started only now: it reads the authentication settings from the API server once
            # at start, and exits instead of retrying when it cannot.
            self._launch(KUBE_CONTROLLER_MANAGER)
            self._await(KUBE_CONTROLLER_MANAGER, "become healthy", self._probe_controller_manager,
                        deadline=deadline)
            self._await(KUBE_CONTROLLER_MANAGER, "create the ServiceAccount default/default",
                        self._probe_default_service_account, deadline=deadline)
        except BaseException:
            self.stop()
            raise
        logger.info("The local cluster is ready at %s after %.1f s; its kubeconfig is %s.",
                    self.server, time.monotonic() - started, self.kubeconfig)

    def _restart(self, name: str, *, timeout: float) -> None:
        # A component that died is still listed, and is simply started again.
        process = self._processes.pop(name, None)
        if process is None:
            raise RuntimeError(f"{name} was never started; start the cluster first.")
        deadline = time.monotonic() + timeout
        process.stop(grace=STOP_GRACE)
        self._launch(name)
        try:
            if name == ETCD:
                self._await(ETCD, "become healthy", self._probe_etcd, deadline=deadline)
            self._await(KUBE_APISERVER, "become ready", self._probe_apiserver, deadline=deadline)
        except BaseException:
            self._processes.pop(name).stop(grace=STOP_GRACE)
            raise
        finally:
            if self._state_file is not None:
                _write_state(self._state_file, self)
        logger.info("%s has restarted.", name)

    def _launch(self, name: str) -> None:
        command = [str(self._executable(name)), *self._arguments(name)]
        log = self.log_path(name)
        with log.open("ab") as sink:
            stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
            sink.write(f"==== {stamp} starting: {shlex.join(command)}\n".encode())
            sink.flush()
            popen = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                # A detached component gets a session of its own, so that it outlives the
                # terminal and the Python process that started it.  An attached one gets a
                # process group of its own: a Ctrl-C then reaches Python alone, which can
                # shut an operator down while the API server still answers, and stop the
                # components afterwards, in order.
                start_new_session=self._detached,
                process_group=None if self._detached else 0,
                preexec_fn=None if self._detached else _end_with_parent(),
            )
        self._processes[name] = _Process(name=name, pid=popen.pid, popen=popen)
        logger.debug("Started %s with pid %d; its log is %s.", name, popen.pid, log)

    def _executable(self, name: str) -> Path:
        executables = {
            ETCD: self.binaries.etcd,
            KUBE_APISERVER: self.binaries.kube_apiserver,
            KUBE_CONTROLLER_MANAGER: self.binaries.kube_controller_manager,
        }
        executable = executables[name]
        assert executable is not None, "create() refuses binaries without a controller manager"
        return executable

    def _arguments(self, name: str) -> list[str]:
        if name == ETCD:
            return self._etcd_arguments()
        if name == KUBE_APISERVER:
            return _merge_flags(self._apiserver_arguments(), self.extra_apiserver_args)
        return _merge_flags(self._controller_manager_arguments(),
                            self.extra_controller_manager_args)

    def _etcd_arguments(self) -> list[str]:
        client = f"http://127.0.0.1:{self.ports.etcd_client}"
        peer = f"http://127.0.0.1:{self.ports.etcd_peer}"
        return [
            "--name=default",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            # A local cluster's data is disposable: skipping fsync makes every write fast,
            # and a crash of the machine, the one thing it does not survive, ends the
            # cluster anyway.
            "--unsafe-no-fsync",
            f"--quota-backend-bytes={ETCD_QUOTA_BYTES}",
            "--log-level=warn",
        ]

    def _apiserver_arguments(self) -> list[str]:
        certs = self.certs
        # No --enable-admission-plugins: the defaults (NamespaceLifecycle, ServiceAccount,
        # PodSecurity, ResourceQuota and the rest) are what a real cluster runs.
        return [
            f"--etcd-servers=http://127.0.0.1:{self.ports.etcd_client}",
            f"--secure-port={self.ports.apiserver}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            "--endpoint-reconciler-type=none",
            f"--cert-dir={certs.folder / KUBE_APISERVER}",
            f"--tls-cert-file={certs.apiserver.cert}",
            f"--tls-private-key-file={certs.apiserver.key}",
            f"--client-ca-file={certs.ca.cert}",
            f"--requestheader-client-ca-file={certs.front_proxy_ca.cert}",
            f"--requestheader-allowed-names={FRONT_PROXY_USER}",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={certs.front_proxy_client.cert}",
            f"--proxy-client-key-file={certs.front_proxy_client.key}",
            "--authorization-mode=RBAC",
            f"--service-account-key-file={certs.service_account_public_key}",
            f"--service-account-signing-key-file={certs.service_account_private_key}",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--api-audiences={SERVICE_ACCOUNT_ISSUER}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            "--allow-privileged=true",
            # On SIGTERM, the API server waits for its clients' connections to close, up to
            # the request timeout of 60 s; watches keep them open, so a restart under an
            # operator would end in SIGKILL.  In this mode it answers new requests with a
            # Retry-After until the running ones are done, then waits only 2 s more.
            "--shutdown-send-retry-after=true",
            "--v=1",
        ]

    def _controller_manager_arguments(self) -> list[str]:
        certs = self.certs
        kubeconfig = self.workdir / f"{KUBE_CONTROLLER_MANAGER}.kubeconfig"
        return [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--secure-port={self.ports.controller_manager}",
            "--bind-address=127.0.0.1",
            f"--cert-dir={certs.folder / KUBE_CONTROLLER_MANAGER}",
            "--leader-elect=false",
            f"--controllers={','.join(CONTROLLERS)}",
            f"--service-account-private-key-file={certs.service_account_private_key}",
            f"--root-ca-file={certs.ca.cert}",
            "--use-service-account-credentials=true",
            "--v=1",
        ]

    def _await(
        self,
        component: str,
        goal: str,
        probe: Callable[[], str | None],
        *,
        deadline: float,
    ) -> None:
        """Poll ``probe`` until it reports success (``None``), a process dies, or time is up.

        ``probe`` returns ``None`` once ready, or else a short account of what it saw, which
        goes into the error on timeout.
        """
        while True:
            self._raise_if_any_exited()
            seen = probe()
            if seen is None:
                logger.debug("Waited for %s to %s.", component, goal)
                return
            if time.monotonic() >= deadline:
                raise self._failure(component, f"{component} failed to {goal} in time; "
                                               f"the last probe saw: {seen}.")
            time.sleep(_POLL_INTERVAL)

    def _raise_if_any_exited(self) -> None:
        for name, process in self._processes.items():
            if not process.alive():
                code = process.returncode
                how = f"with code {code}" if code is not None else "with an unknown code"
                raise self._failure(name, f"{name} exited {how} while the cluster was starting.")

    def _failure(self, component: str, summary: str) -> ControlPlaneError:
        log = self.log_path(component)
        return ControlPlaneError(
            f"{summary} Its log is {log}; its last lines are:\n{_tail(log)}",
            component=component,
            log=log,
        )

    def _probe_etcd(self) -> str | None:
        try:
            status, body = _get(self.ports.etcd_client, "/health", context=None)
            health = json.loads(body).get("health") if status == 200 else None
        except (OSError, http.client.HTTPException, ValueError) as error:
            return f"GET /health failed: {error}"
        return None if health == "true" else f"GET /health answered {status}: {body.strip()}"

    def _probe_apiserver(self) -> str | None:
        try:
            status, body = _get(self.ports.apiserver, "/readyz?verbose", context=self._admin_tls())
        except (OSError, http.client.HTTPException) as error:
            return f"GET /readyz failed: {error}"
        if status == 200:
            return None
        failing = [line for line in body.splitlines() if line.startswith("[-]")]
        return f"GET /readyz answered {status}: {'; '.join(failing) or body.strip()}"

    def _probe_default_namespace(self) -> str | None:
        return self._probe_object("/api/v1/namespaces/default")

    def _probe_default_service_account(self) -> str | None:
        return self._probe_object("/api/v1/namespaces/default/serviceaccounts/default")

    def _probe_object(self, path: str) -> str | None:
        try:
            status, _ = _get(self.ports.apiserver, path, context=self._admin_tls())
        except (OSError, http.client.HTTPException) as error:
            return f"GET {path} failed: {error}"
        return None if status == 200 else f"GET {path} answered {status}"

    def _probe_controller_manager(self) -> str | None:
        # The controller manager signs its serving certificate itself, and /healthz tells
        # nothing secret; the probe is local, so it skips verification.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            status, body = _get(self.ports.controller_manager, "/healthz", context=context)
        except (OSError, http.client.HTTPException) as error:
            return f"GET /healthz failed: {error}"
        return None if status == 200 else f"GET /healthz answered {status}: {body.strip()}"

    def _admin_tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.certs.ca.cert))
        context.load_cert_chain(str(self.certs.admin.cert), str(self.certs.admin.key))
        return context

    def _answers(self) -> bool:
        """Whether all three components run and the API server is ready."""
        if set(self._processes) != set(COMPONENTS):
            return False
        if not all(process.alive() for process in self._processes.values()):
            return False
        return self._probe_apiserver() is None


class _Process:
    """One running component: a child of ours, or a process adopted from a state file.

    Only a child can be waited for; an adopted process is watched through ``/proc``.
    """

    def __init__(self, *, name: str, pid: int, popen: subprocess.Popen[bytes] | None) -> None:
        self.name = name
        self.pid = pid
        self._popen = popen

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode if self._popen is not None else None

    def alive(self) -> bool:
        if self._popen is not None:
            return self._popen.poll() is None
        return _pid_alive(self.pid)

    def stop(self, *, grace: float) -> None:
        if not self.alive():
            logger.debug("%s (pid %d) had already exited.", self.name, self.pid)
            return
        self._signal(signal.SIGTERM)
        if self._wait(grace):
            logger.debug("%s (pid %d) exited after SIGTERM.", self.name, self.pid)
            return
        logger.warning("%s (pid %d) did not exit within %.0f s of SIGTERM, so it gets SIGKILL.",
                       self.name, self.pid, grace)
        self._signal(signal.SIGKILL)
        if not self._wait(_KILL_WAIT):
            logger.warning("%s (pid %d) is still there %.0f s after SIGKILL.",
                           self.name, self.pid, _KILL_WAIT)

    def _signal(self, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)

    def _wait(self, seconds: float) -> bool:
        if self._popen is not None:
            try:
                self._popen.wait(timeout=seconds)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + seconds
        while _pid_alive(self.pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True


_running: set[LocalCluster] = set()
"""Attached clusters that have started and not yet stopped, for the exit hook below."""


@atexit.register
def _stop_running_clusters() -> None:
    # An attached cluster must not outlive its Python process; this covers a test run or a
    # script that ends without stopping it.  A Python killed by a signal it does not handle
    # (SIGKILL always; SIGTERM and SIGHUP unless the program handles them) skips this hook;
    # for that case, see ``_end_with_parent``.
    for cluster in list(_running):
        cluster.stop()


_PR_SET_PDEATHSIG = 1
"""The ``prctl`` option by which Linux signals a process when the thread that forked it ends."""

_prctl: Callable[..., int] | None = None
if sys.platform.startswith("linux"):
    with contextlib.suppress(OSError, AttributeError):
        _prctl = ctypes.CDLL(None, use_errno=True).prctl


def _end_with_parent() -> Callable[[], None] | None:
    """What an attached component runs before its binary, so that it ends with Python.

    Linux sends the child SIGKILL when the thread that started it ends, which covers a
    Python killed outright, where the exit hook never runs.  Nothing is lost by not asking
    politely: nobody is left to use the cluster's data.  Because that is the thread and
    not the process, it is arranged only when the main thread starts the cluster: a cluster
    started from a worker thread would otherwise die with that thread.  Elsewhere than on
    Linux, nothing is arranged.
    """
    prctl = _prctl
    if prctl is None or threading.current_thread() is not threading.main_thread():
        return None
    parent = os.getpid()

    def arrange() -> None:
        # Runs in the forked child, between fork and exec: only a system call, no imports
        # and no locks, as threads of the parent may have held some at the fork.
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(1)  # The parent died before the arrangement took hold.

    return arrange


def default_state_dir() -> Path:
    """Where ``up`` and ``down`` keep a detached cluster: ``<cache_root()>/cluster``."""
    return cache_root() / "cluster"


def up(
    state_dir: Path | None = None,
    *,
    binaries: Binaries | None = None,
    timeout: float = 60.0,
) -> LocalCluster:
    """Start a cluster that outlives this process, or reuse the one already running.

    The cluster lives in ``<state_dir>/workdir``, so its kubeconfig is always at
    ``<state_dir>/workdir/kubeconfig``; ``<state_dir>/state.json`` records its processes.
    A cluster that is only partly alive is stopped and replaced by a fresh one.
    """
    state_dir = (state_dir or default_state_dir()).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    with _locked(state_dir):
        state_file = state_dir / _STATE_FILE
        existing = _adopt(state_file, binaries=binaries)
        if existing is not None and existing.pids:
            if existing._answers():
                logger.info("Reusing the local cluster at %s.", existing.server)
                return existing
            logger.warning("The local cluster in %s is only partly alive; it is replaced.",
                           existing.workdir)
            existing.stop()
        state_file.unlink(missing_ok=True)
        workdir = state_dir / "workdir"
        shutil.rmtree(workdir, ignore_errors=True)
        cluster = LocalCluster.create(workdir, binaries=binaries)
        cluster._start(timeout=timeout, detached=True)
        cluster._state_file = state_file
        _write_state(state_file, cluster)
        return cluster


def down(state_dir: Path | None = None) -> bool:
    """Stop the detached cluster and remove its files; False if nothing was running."""
    state_dir = (state_dir or default_state_dir()).resolve()
    if not state_dir.is_dir():
        return False
    with _locked(state_dir):
        state_file = state_dir / _STATE_FILE
        cluster = _adopt(state_file, binaries=None)
        was_running = cluster is not None and bool(cluster.pids)
        if cluster is not None:
            cluster.stop()
        # The folder is derived, never read from the state file, so that a damaged state
        # file cannot point the removal anywhere else.
        shutil.rmtree(state_dir / "workdir", ignore_errors=True)
        state_file.unlink(missing_ok=True)
        return was_running


def _adopt(state_file: Path, *, binaries: Binaries | None) -> LocalCluster | None:
    """Rebuild a detached cluster from its state file, with those processes that still live.

    A pid counts only if its process still runs the recorded binary on this cluster's
    files: after a reboot, the same number may belong to anything.
    """
    try:
        state: _State = json.loads(state_file.read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        logger.warning("The state file %s is unreadable and is ignored.", state_file)
        return None
    if state.get("version") != _STATE_VERSION:
        logger.warning("The state file %s has an unknown version and is ignored.", state_file)
        return None
    # Derived as ``up`` derives it; the recorded one is there for people and scripts.
    workdir = (state_file.parent / "workdir").resolve()
    recorded = state["binaries"]
    kcm = recorded.get("kube_controller_manager")
    cluster = LocalCluster(
        workdir=workdir,
        kubeconfig=Path(state["kubeconfig"]),
        server=state["server"],
        binaries=binaries or Binaries(
            etcd=Path(recorded["etcd"]),
            kube_apiserver=Path(recorded["kube_apiserver"]),
            kube_controller_manager=Path(kcm) if kcm else None,
            kubectl=Path(recorded["kubectl"]),
        ),
        certs=certificate_paths(workdir / "certs"),
        ports=Ports(**state["ports"]),
    )
    cluster._detached = True
    cluster._state_file = state_file
    executables = {
        ETCD: recorded["etcd"],
        KUBE_APISERVER: recorded["kube_apiserver"],
        KUBE_CONTROLLER_MANAGER: kcm or "",
    }
    for name, pid in state["pids"].items():
        command = _command_of(pid)
        ours = bool(command) and command[0] == executables.get(name)
        if ours and str(workdir) in " ".join(command) and _pid_alive(pid):
            cluster._processes[name] = _Process(name=name, pid=pid, popen=None)
    return cluster


def _write_state(state_file: Path, cluster: LocalCluster) -> None:
    binaries = cluster.binaries
    state: _State = {
        "version": _STATE_VERSION,
        "workdir": str(cluster.workdir),
        "kubeconfig": str(cluster.kubeconfig),
        "server": cluster.server,
        "ports": {
            "etcd_client": cluster.ports.etcd_client,
            "etcd_peer": cluster.ports.etcd_peer,
            "apiserver": cluster.ports.apiserver,
            "controller_manager": cluster.ports.controller_manager,
        },
        "pids": cluster.pids,
        "binaries": {
            "etcd": str(binaries.etcd),
            "kube_apiserver": str(binaries.kube_apiserver),
            "kube_controller_manager": str(binaries.kube_controller_manager or ""),
            "kubectl": str(binaries.kubectl),
        },
    }
    # Written aside and renamed, so that a reader never sees half a file.
    partial = state_file.with_suffix(".partial")
    partial.write_text(json.dumps(state, indent=2) + "\n")
    partial.replace(state_file)


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the state folder, so that two ``up`` never race."""
    with (state_dir / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _command_of(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _pid_alive(pid: int) -> bool:
    """Whether a process runs; a zombie does not, whoever its parent is."""
    # Reap it if it is our child, as when ``up`` and ``down`` run in the same process.
    with contextlib.suppress(ChildProcessError):
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # The state follows the command name, which is in parentheses and may hold spaces.
    return stat.rpartition(")")[2].split()[0] != "Z"


def _free_ports(count: int) -> list[int]:
    """Ports on 127.0.0.1 that are free now; all held at once, so they are distinct."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def _get(port: int, path: str, *, context: ssl.SSLContext | None) -> tuple[int, str]:
    """GET a path on a loopback port, over TLS when given a context; status and body."""
    connection: http.client.HTTPConnection
    if context is None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=_PROBE_TIMEOUT)
    else:
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=_PROBE_TIMEOUT,
                                                 context=context)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


def _merge_flags(defaults: Sequence[str], extra: Sequence[str]) -> list[str]:
    """``defaults`` without the flags that ``extra`` sets again, followed by ``extra``.

    Dropping the default rather than relying on the last one winning matters for list
    flags, which the Kubernetes flag parser appends to instead of replacing.
    """
    overridden = {_flag_name(arg) for arg in extra if arg.startswith("-")}
    return [arg for arg in defaults if _flag_name(arg) not in overridden] + list(extra)


def _flag_name(arg: str) -> str:
    return arg.split("=", 1)[0].lstrip("-")


def _write_kubeconfig(
    path: Path,
    *,
    server: str,
    ca: Path,
    user: str,
    client: KeyPair,
) -> None:
    """Write a self-contained kubeconfig: every certificate and key is embedded in it."""
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": CONTEXT, "cluster": {"server": server,
                                          "certificate-authority-data": _base64(ca)}},
        ],
        "users": [
            {"name": user, "user": {"client-certificate-data": _base64(client.cert),
                                    "client-key-data": _base64(client.key)}},
        ],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": user}}],
        "current-context": CONTEXT,
    }
    # It holds a private key, so only the owner may read it.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        yaml.safe_dump(config, file, sort_keys=False)


def _base64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def _tail(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError as error:
        return f"(the log could not be read: {error})"
    return "\n".join(lines[-_LOG_TAIL_LINES:]) or "(the log is empty)"
