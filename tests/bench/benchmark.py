"""How fast the operator converges, what it writes, and how soon it repairs drift.

``python -m tests.bench.benchmark --profiles N --json out.json`` starts a fresh local control
plane, installs the CRDs, and measures, in this order:

1. *Floor.* N namespaces each get the full sample profile while the operator is not
   running. The children that the operator's own builders make of those profiles are then
   applied by a bare loop of server-side applies, with the operator's client, field
   manager and concurrency (``WORKERS`` profiles at a time, ``APPLY_CONCURRENCY`` applies
   each). That is the least any controller could spend on the same writes.
2. *Convergence.* The floor's objects are deleted again (and its namespace labels given
   up), so the operator meets exactly the state the floor met: profiles and no children.
   The operator starts, and the clock runs from its spawn until every profile is Ready
   for its current generation. The API server's write counts show what that cost.
3. *Steady state.* Sixty seconds of nothing: an idle operator should write nothing.
4. *Restart.* SIGTERM and start again: until all is Ready and no write has come for five
   seconds. A restart should write nothing either, as the state it finds is converged.
   Every profile's status says Ready throughout, so where the operator serves its own
   metrics, idle also means five seconds without a reconcile pass, and the moment it has
   reconciled every profile again is reported as well.
5. *Drift repair.* Children changed one at a time, alternately a NetworkPolicy deleted
   and a PodDisruptionBudget's minAvailable edited by another field manager; each is timed
   from the change to the moment a GET shows it repaired.

The floor reuses the profiles' namespaces and owners rather than namespaces of its own:
children there would need owners, and a profile per floor namespace would either be
reconciled by the operator later or leave garbage collection running in the background
while the operator is timed. Deleting the floor's objects first costs the operator nothing
it would not otherwise pay, since it finds them absent either way.

The control plane shares the machine with the benchmark and the operator, so the figures
are for comparing runs on one machine; the load average at the start is recorded with them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from hardening_operator.api.v1alpha1 import parse_spec
from hardening_operator.builders import build_all
from hardening_operator.builders.common import MANAGED_SELECTOR, Desired, Owner
from hardening_operator.builders.podsecurity import namespace_body
from hardening_operator.controller import WORKERS
from hardening_operator.controlplane.cluster import LocalCluster
from hardening_operator.engine.drift import stamped
from hardening_operator.engine.kinds import resource_for
from hardening_operator.engine.reconciler import APPLY_CONCURRENCY, FIELD_MANAGER
from hardening_operator.kube.client import Credentials, KubeClient
from hardening_operator.kube.resources import (
    HARDENING_PROFILES,
    NAMESPACES,
    NETWORK_POLICIES,
    POD_DISRUPTION_BUDGETS,
    SECRET_STORES,
    Resource,
)
from tests.e2e.helpers import write_requests
from tests.support import PROFILE_CRD, SAMPLES, STORE_CRD, Operator, wait_established

#: The resources whose writes are counted: everything the operator may write.
WRITTEN = {"networkpolicies", "poddisruptionbudgets", "limitranges", "secretstores",
           "namespaces", "hardeningprofiles", "events", "pods", "clusternetworkpolicies",
           "adminnetworkpolicies"}
#: Seconds between two LISTs of the profiles while waiting for them to be Ready.
READY_POLL = 0.5
#: Seconds between two GETs of a changed child while waiting for its repair.
REPAIR_POLL = 0.02
#: Seconds without a write, with every profile Ready, that count as idle after a restart.
QUIET = 5.0
#: The field manager that plays the person who edits a child by hand.
EDITOR = "drift-bench"
#: Parallel requests while the benchmark itself sets up or tears down objects.
SETUP_CONCURRENCY = 32


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def credentials_from_kubeconfig(path: Path, folder: Path) -> Credentials:
    """The current context's server and embedded certificates, as the engine's client wants.

    The client certificate and key go into files in ``folder``, readable by the owner only:
    Python's ssl loads a certificate chain only from files, and ``Credentials`` given the
    bytes would write them to temporary files that nothing removes.
    """
    config = yaml.safe_load(path.read_text())
    context = _named(config["contexts"], config["current-context"])["context"]
    cluster = _named(config["clusters"], context["cluster"])["cluster"]
    user = _named(config["users"], context["user"])["user"]
    files = {}
    for key, name in (("client-certificate-data", "bench-client.crt"),
                      ("client-key-data", "bench-client.key")):
        target = folder / name
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as sink:
            sink.write(base64.b64decode(user[key]))
        files[key] = str(target)
    return Credentials(
        server=cluster["server"],
        ca_data=base64.b64decode(cluster["certificate-authority-data"]).decode(),
        certificate_path=files["client-certificate-data"],
        private_key_path=files["client-key-data"],
    )


def _named(entries: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(entry for entry in entries if entry["name"] == name)


def sample_spec(*, with_stores: bool) -> dict[str, Any]:
    """The spec of the hardening guide's sample profile."""
    docs = yaml.safe_load_all((SAMPLES / "hardeningprofile.yaml").read_text())
    spec = dict(next(d for d in docs if d and d.get("kind") == "HardeningProfile")["spec"])
    if not with_stores:
        spec.pop("secretStores", None)
    return spec


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile; 0.0 of nothing."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


def vm_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in KiB."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


@dataclass
class Results:
    profiles: int
    children_per_profile: int
    load_average: list[float]
    with_secret_stores: bool
    floor_seconds: float = 0.0
    convergence_seconds: float = 0.0
    startup_seconds: float = 0.0
    ratio: float = 0.0
    convergence_writes: dict[str, int] = field(default_factory=dict)
    convergence_writes_per_profile: float = 0.0
    steady_seconds: float = 0.0
    steady_writes: dict[str, int] = field(default_factory=dict)
    convergence_reconciles: int | None = None
    restart_last_write_seconds: float | None = None
    restart_resumed_seconds: float | None = None
    restart_idle_seconds: float = 0.0
    restart_reconciles: int | None = None
    restart_writes: dict[str, int] = field(default_factory=dict)
    repairs: int = 0
    repair_failures: int = 0
    repair_p50: float = 0.0
    repair_p99: float = 0.0
    repair_max: float = 0.0
    repair_seconds: list[float] = field(default_factory=list)
    rss_after_convergence_kib: int = 0
    rss_after_restart_kib: int = 0
    peak_rss_kib: int = 0


class Bench:
    """The cluster, the engine's client on it, and the profiles under test."""

    def __init__(self, cluster: LocalCluster, client: KubeClient, credentials: Credentials,
                 *, profiles: int, spec: dict[str, Any], served: dict[str, Resource | None]):
        self.cluster = cluster
        self.client = client
        self.credentials = credentials
        self.names = [f"bench-{i:04d}" for i in range(profiles)]
        self.spec = spec
        self.served = served
        self.owners: dict[str, Owner] = {}
        #: Where the operator serves its own metrics, if its version can.
        self.operator_metrics: str | None = None
        self._raw: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._raw is not None:
            await self._raw.close()
        await self.client.close()

    # -- reading the API server --------------------------------------------------------------

    def _session(self) -> aiohttp.ClientSession:
        """A session for plain-text GETs (metrics), which the engine's client cannot do."""
        if self._raw is None:
            connector = aiohttp.TCPConnector(ssl=self.credentials.ssl_context())
            self._raw = aiohttp.ClientSession(connector=connector)
        return self._raw

    async def writes(self) -> Counter[str]:
        """The API server's write counts so far, on the resources the operator writes."""
        async with self._session().get(self.credentials.server + "/metrics") as response:
            response.raise_for_status()
            return write_requests(await response.text(), WRITTEN)

    async def reconciles(self) -> int | None:
        """The operator's reconcile passes over the bench's profiles since it started."""
        if self.operator_metrics is None:
            return None
        try:
            async with self._session().get(self.operator_metrics) as response:
                text = await response.text()
        except aiohttp.ClientError:
            return 0  # not serving yet
        total = 0.0
        for line in text.splitlines():
            if line.startswith("hardening_reconciles_total{") and 'namespace="bench-' in line:
                total += float(line.rsplit(" ", 1)[1])
        return int(total)

    async def ready_count(self) -> int:
        """How many of the bench's profiles are Ready for their current generation."""
        ready = 0
        for body in await self.client.list(HARDENING_PROFILES):
            if body["metadata"]["namespace"] not in self.owners:
                continue
            status = body.get("status") or {}
            if status.get("observedGeneration") != body["metadata"].get("generation"):
                continue
            if any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in status.get("conditions") or []):
                ready += 1
        return ready

    def wanted(self, namespace: str) -> list[Desired]:
        return build_all(self.owners[namespace], parse_spec(self.spec))

    # -- setting up --------------------------------------------------------------------------

    async def create_profiles(self) -> None:
        async def one(namespace: str) -> None:
            await self.client.create(NAMESPACES, {
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": namespace, "labels": {"name": namespace}}})
            created = await self.client.create(HARDENING_PROFILES, {
                "apiVersion": HARDENING_PROFILES.api_version, "kind": "HardeningProfile",
                "metadata": {"name": namespace, "namespace": namespace}, "spec": self.spec,
            }, namespace=namespace)
            self.owners[namespace] = Owner(name=namespace, namespace=namespace,
                                           uid=created["metadata"]["uid"])

        await _bounded(SETUP_CONCURRENCY, (one(ns) for ns in self.names))

    def _apply_body(self, desired: Desired) -> tuple[Resource, dict[str, Any]] | None:
        resource = resource_for(desired.kind, self.served)
        if resource is None:
            return None
        body = stamped(desired.body)
        body["apiVersion"] = resource.api_version
        return resource, body

    async def floor(self) -> int:
        """Apply every profile's children as the engine would, minus the engine; a count."""
        applied = 0

        async def profile(namespace: str) -> None:
            limiter = asyncio.Semaphore(APPLY_CONCURRENCY)

            async def child(desired: Desired) -> None:
                nonlocal applied
                target = self._apply_body(desired)
                if target is None:
                    return
                async with limiter:
                    await self.client.apply(target[0], target[1], field_manager=FIELD_MANAGER,
                                            force=True)
                applied += 1

            await asyncio.gather(*(child(d) for d in self.wanted(namespace)))

        await _bounded(WORKERS, (profile(ns) for ns in self.names))
        return applied

    async def undo_floor(self) -> None:
        """Delete what the floor applied and give up its namespace labels."""
        async def one(desired: Desired) -> None:
            target = self._apply_body(desired)
            if target is None:
                return
            resource, body = target
            if desired.owned:
                await self.client.delete(resource, name=desired.name,
                                         namespace=body["metadata"].get("namespace"))
            elif resource == NAMESPACES:
                await self.client.apply(NAMESPACES, namespace_body(desired.name),
                                        field_manager=FIELD_MANAGER, force=True)

        await _bounded(SETUP_CONCURRENCY,
                       (one(d) for ns in self.names for d in self.wanted(ns)))
        for resource in self._owned_resources():
            left = await self.client.list(resource, label_selector=MANAGED_SELECTOR)
            if left:
                raise RuntimeError(f"{len(left)} {resource.plural} are left after the floor")

    def _owned_resources(self) -> list[Resource]:
        kinds = {d.kind for d in self.wanted(self.names[0]) if d.owned}
        return [r for r in (resource_for(k, self.served) for k in sorted(kinds)) if r]

    # -- waiting -----------------------------------------------------------------------------

    async def wait_all_ready(self, *, timeout: float) -> float:
        """Poll until every profile is Ready; the monotonic time when they were."""
        deadline = time.monotonic() + timeout
        last_seen = -1
        while True:
            ready = await self.ready_count()
            now = time.monotonic()
            if ready == len(self.names):
                return now
            if ready != last_seen:
                _say(f"{ready}/{len(self.names)} profiles are Ready.")
                last_seen = ready
            if now > deadline:
                raise TimeoutError(f"only {ready} of {len(self.names)} profiles became Ready")
            await asyncio.sleep(READY_POLL)

    async def wait_idle(self, since: float, start: Counter[str], *,
                        timeout: float) -> Idle:
        """Poll until all is Ready and neither a write nor (where the operator tells) a
        reconcile pass came for ``QUIET`` s; ``start`` are the write counts before."""
        idle = Idle()
        last_writes, last_passes, last_change = 0, 0, since
        deadline = time.monotonic() + timeout
        while True:
            seen = await self.writes() - start
            passes = await self.reconciles()
            now = time.monotonic()
            if sum(seen.values()) != last_writes:
                last_writes, last_change = sum(seen.values()), now
                idle.last_write = now - since
            if passes is not None and passes != last_passes:
                last_passes, last_change = passes, now
                if idle.resumed is None and passes >= len(self.names):
                    idle.resumed = now - since
            idle.writes, idle.passes = seen, passes
            ready = await self.ready_count() == len(self.names)
            if ready and now - last_change >= QUIET and now - since >= QUIET:
                idle.at = last_change - since
                return idle
            if now > deadline:
                raise TimeoutError("the operator did not become idle after its restart")
            await asyncio.sleep(READY_POLL)

    # -- drift -------------------------------------------------------------------------------

    async def repair_one(self, rng: random.Random, index: int, *,
                         timeout: float) -> float | None:
        """Change one child; the seconds until it was repaired, or None if it never was."""
        namespace = rng.choice(self.names)
        wanted = self.wanted(namespace)
        if index % 2 == 0:
            policy = rng.choice([d for d in wanted if d.kind == NETWORK_POLICIES.kind])
            live = await self.client.get(NETWORK_POLICIES, name=policy.name, namespace=namespace)
            assert live is not None, f"NetworkPolicy {namespace}/{policy.name} is missing"
            old_uid = live["metadata"]["uid"]
            await self.client.delete(NETWORK_POLICIES, name=policy.name, namespace=namespace)

            def repaired(obj: dict[str, Any] | None) -> bool:
                return obj is not None and obj["metadata"]["uid"] != old_uid

            resource, name = NETWORK_POLICIES, policy.name
        else:
            budget = rng.choice([d for d in wanted if d.kind == POD_DISRUPTION_BUDGETS.kind])
            want = budget.body["spec"]["minAvailable"]
            await self.client.request(
                "PATCH", POD_DISRUPTION_BUDGETS.path(namespace=namespace, name=budget.name),
                params={"fieldManager": EDITOR},
                body={"spec": {"minAvailable": want + 3}},
                content_type="application/merge-patch+json")

            def repaired(obj: dict[str, Any] | None) -> bool:
                return obj is not None and obj["spec"].get("minAvailable") == want

            resource, name = POD_DISRUPTION_BUDGETS, budget.name
        changed = time.monotonic()
        while time.monotonic() - changed < timeout:
            if repaired(await self.client.get(resource, name=name, namespace=namespace)):
                return time.monotonic() - changed
            await asyncio.sleep(REPAIR_POLL)
        _say(f"{resource.kind} {namespace}/{name} was not repaired within {timeout:.0f} s.")
        return None


@dataclass
class Idle:
    """What the restart looked like: seconds from the spawn, and the writes it made."""

    last_write: float | None = None
    resumed: float | None = None
    #: When the last write or pass came: the quiet that followed lasted ``QUIET`` s.
    at: float = 0.0
    passes: int | None = None
    writes: Counter[str] = field(default_factory=Counter)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serves_metrics() -> bool:
    """Whether this version of the operator can serve metrics of its own."""
    usage = subprocess.run([sys.executable, "-m", "hardening_operator.cli", "run", "--help"],
                           capture_output=True, text=True, check=False).stdout
    return "--metrics-address" in usage


async def _bounded(limit: int, work: Iterable[Awaitable[None]]) -> None:
    limiter = asyncio.Semaphore(limit)

    async def one(job: Awaitable[None]) -> None:
        async with limiter:
            await job

    await asyncio.gather(*(one(job) for job in work))


def _total(counts: Counter[str] | dict[str, int]) -> int:
    return sum(counts.values())


async def run(cluster: LocalCluster, args: argparse.Namespace) -> Results:
    with_stores = STORE_CRD.is_file()
    cluster.kubectl("apply", "--server-side", "-f", str(PROFILE_CRD))
    wait_established(cluster, "hardeningprofiles.hardening.plumbing.ai")
    if with_stores:
        cluster.kubectl("apply", "--server-side", "-f", str(STORE_CRD))
        wait_established(cluster, "secretstores.external-secrets.io")
    else:
        _say(f"No SecretStore CRD at {STORE_CRD}: the profiles are measured without stores.")
    credentials = credentials_from_kubeconfig(cluster.kubeconfig, cluster.workdir)
    client = KubeClient(lambda refresh=False: credentials, user_agent="hardening-bench")
    bench = Bench(cluster, client, credentials, profiles=args.profiles,
                  spec=sample_spec(with_stores=with_stores),
                  served={SECRET_STORES.kind: SECRET_STORES if with_stores else None})
    operator_args: list[str] = []
    if _serves_metrics():
        address = f"127.0.0.1:{_free_port()}"
        operator_args = ["--metrics-address", address]
        bench.operator_metrics = f"http://{address}/metrics"
    operator = Operator(cluster.kubeconfig, cluster.workdir / "operator.log",
                        args=operator_args)
    try:
        return await _measure(bench, operator, args, with_stores=with_stores)
    finally:
        operator.stop()
        await bench.close()


async def _measure(bench: Bench, operator: Operator, args: argparse.Namespace, *,
                   with_stores: bool) -> Results:
    n = args.profiles
    _say(f"Creating {n} namespaces, each with the sample profile.")
    await bench.create_profiles()
    results = Results(profiles=n, children_per_profile=0, with_secret_stores=with_stores,
                      load_average=[round(x, 2) for x in os.getloadavg()])

    _say("Floor: applying the children with a bare server-side-apply loop.")
    started = time.monotonic()
    applied = await bench.floor()
    results.floor_seconds = time.monotonic() - started
    results.children_per_profile = applied // n
    _say(f"Floor: {applied} objects in {results.floor_seconds:.1f} s; removing them again.")
    await bench.undo_floor()

    _say("Convergence: starting the operator.")
    before = await bench.writes()
    spawned = time.monotonic()
    operator.start()
    results.startup_seconds = time.monotonic() - spawned
    done = await bench.wait_all_ready(timeout=args.timeout)
    results.convergence_seconds = done - spawned
    results.ratio = results.convergence_seconds / results.floor_seconds
    counts = await bench.writes() - before
    results.convergence_writes = dict(sorted(counts.items()))
    results.convergence_writes_per_profile = _total(counts) / n
    results.convergence_reconciles = await bench.reconciles()
    assert operator.process is not None
    results.rss_after_convergence_kib = vm_status(operator.process.pid)["VmRSS"]
    _say(f"Converged in {results.convergence_seconds:.1f} s.")

    _say(f"Steady state: watching writes for {args.steady:.0f} s.")
    # Writes that trail the last Ready (a watch event's second look) belong to convergence.
    await asyncio.sleep(2)
    before = await bench.writes()
    started = time.monotonic()
    await asyncio.sleep(args.steady)
    results.steady_seconds = time.monotonic() - started
    results.steady_writes = dict(sorted((await bench.writes() - before).items()))

    _say("Restart: SIGTERM, then start again.")
    operator.stop()
    before = await bench.writes()
    spawned = time.monotonic()
    operator.start()
    idle = await bench.wait_idle(spawned, before, timeout=args.timeout)
    results.restart_last_write_seconds = idle.last_write
    results.restart_resumed_seconds = idle.resumed
    results.restart_idle_seconds = idle.at
    results.restart_reconciles = idle.passes
    results.restart_writes = dict(sorted(idle.writes.items()))
    assert operator.process is not None
    results.rss_after_restart_kib = vm_status(operator.process.pid)["VmRSS"]

    _say(f"Drift: changing {args.repairs} children one at a time (seed {args.seed}).")
    rng = random.Random(args.seed)
    for index in range(args.repairs):
        took = await bench.repair_one(rng, index, timeout=args.repair_timeout)
        if took is None:
            results.repair_failures += 1
        else:
            results.repair_seconds.append(round(took, 4))
    results.repairs = len(results.repair_seconds)
    results.repair_p50 = percentile(results.repair_seconds, 0.50)
    results.repair_p99 = percentile(results.repair_seconds, 0.99)
    results.repair_max = max(results.repair_seconds, default=0.0)
    results.peak_rss_kib = vm_status(operator.process.pid)["VmHWM"]
    return results


def _writes_line(counts: dict[str, int]) -> str:
    return ", ".join(f"{key} {value}" for key, value in counts.items()) or "none"


def _maybe(value: float | None, form: str) -> str:
    return "n/a" if value is None else form.format(value)


def table(r: Results) -> str:
    """The figures as a table for a person."""
    rows = [
        ("profiles", f"{r.profiles} ({r.children_per_profile} children each"
                     f"{', with SecretStores' if r.with_secret_stores else ''})"),
        ("load average at start", " ".join(f"{x:.2f}" for x in r.load_average)),
        ("floor: bare apply loop", f"{r.floor_seconds:.1f} s"),
        ("convergence, from spawn", f"{r.convergence_seconds:.1f} s "
                                    f"({r.startup_seconds:.1f} s of it to log in)"),
        ("convergence / floor", f"{r.ratio:.2f}x"),
        ("writes during convergence", f"{_total(r.convergence_writes)} "
                                      f"({r.convergence_writes_per_profile:.1f} per profile)"),
        ("  by verb and resource", _writes_line(r.convergence_writes)),
        (f"writes in {r.steady_seconds:.0f} s steady state", f"{_total(r.steady_writes)}"
                                                           f" ({_writes_line(r.steady_writes)})"),
        ("reconcile passes, convergence", _maybe(r.convergence_reconciles, "{}")),
        ("restart: every profile passed", _maybe(r.restart_resumed_seconds, "{:.1f} s")),
        ("restart: last write", _maybe(r.restart_last_write_seconds, "{:.1f} s")),
        ("restart: last activity", f"{r.restart_idle_seconds:.1f} s (then {QUIET:.0f} s quiet)"),
        ("reconcile passes, restart", _maybe(r.restart_reconciles, "{}")),
        ("restart: writes", f"{_total(r.restart_writes)} ({_writes_line(r.restart_writes)})"),
        ("drift repairs", f"{r.repairs} of {r.repairs + r.repair_failures}"),
        ("  repair p50 / p99 / max", f"{r.repair_p50 * 1000:.0f} / {r.repair_p99 * 1000:.0f} / "
                                     f"{r.repair_max * 1000:.0f} ms"),
        ("RSS after convergence", f"{r.rss_after_convergence_kib / 1024:.0f} MiB"),
        ("RSS after restart", f"{r.rss_after_restart_kib / 1024:.0f} MiB"),
        ("peak RSS (after drift)", f"{r.peak_rss_kib / 1024:.0f} MiB"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.benchmark",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", type=int, default=200, help="profiles (default 200)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--steady", type=float, default=60.0,
                        help="seconds of steady state to watch (default 60)")
    parser.add_argument("--repairs", type=int, default=50,
                        help="children to change and time the repair of (default 50)")
    parser.add_argument("--repair-timeout", type=float, default=30.0,
                        help="seconds one repair may take before it counts as failed")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds convergence, or idling after the restart, may take")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the drift phase's choices (default: random, printed)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the control plane's files (and the operator's log) here")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(2**32)

    cluster = LocalCluster.create(args.workdir)
    with cluster:
        results = asyncio.run(run(cluster, args))
    print(table(results))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"seed": args.seed, **asdict(results)}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
