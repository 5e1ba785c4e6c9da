"""Quarantine under load: the operator's memory beside many pods, and how fast it reacts.

Run it from the repository root::

    python -m tests.bench.quarantine [--pods 5000] [--quarantined 10] [--json out.json]

It starts a control plane of its own (no kubelet, no scheduler: the pods stay Pending, which
is all the operator cares about), so it never touches the cluster a kubeconfig points at.

What it measures, and why so:

1. Memory. Only pods carrying the ``quarantine`` label key stream to the operator, so its
   resident memory must not follow the number of pods in the cluster. The bench measures
   the operator twice on one cluster, with the same number of namespaces and profiles each
   time, and the pods as the only difference:

   - *baseline*: a first set of namespaces, no pods. The operator starts, then the
     profiles are created, and the operator is measured once they are Ready and its RSS
     has settled. It stops, and those namespaces are deleted (and waited for).
   - *loaded*: a second set of namespaces, filled with ``--pods`` pods before the operator
     starts; then exactly as above.

   Both operators thus list the cluster at start and reconcile the same profiles from
   scratch; an operator started on profiles already in sync would do less work, and an
   operator measured beside pods it has been running through would carry its history.
   RSS is ``VmRSS`` of the operator's process, read from ``/proc``; ``VmHWM`` is its peak.
   "Settled" means ``VmRSS`` moved by at most 2 % over 3 s.

2. Reaction time. Pods are labelled ``quarantine=true`` one at a time, with a pause
   between, and for each the bench waits for the pod's entry in its profile's
   ``status.quarantine.pods`` and for the ``Quarantined`` Event on the Pod; then each
   label is removed again, and the bench waits for the entry to go and for the
   ``Released`` Event. Times run from the moment the PATCH of the label returns. Both are
   observed through watches (profiles, and the operator's Events), which deliver within
   milliseconds and cost nothing between changes; polling would add its interval to every
   figure. Percentiles are by nearest rank: with ten samples, p99 is the maximum.

A run also checks what it sees along the way: the fields of each status entry, and that
each pod got exactly one ``Quarantined`` and one ``Released`` Event. Anything amiss is
listed under "anomalies" in the table and in the JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, cast

import kubernetes
import urllib3

from tests.support import PROFILE_CRD, Operator, profile, wait_established, wait_for

logger = logging.getLogger("bench.quarantine")

GROUP, VERSION, PLURAL = "hardening.plumbing.ai", "v1alpha1", "hardeningprofiles"
PROFILE_NAME = "bench"
#: The field manager of the bench's label changes; the operator reports it as ``by``.
FIELD_MANAGER = "quarantine-bench"
#: The operator's Events say so in ``source.component``.
OPERATOR_COMPONENT = "hardening-operator"
#: Status codes after which a pod is created again: the API server is busy, not refusing.
RETRIED_STATUSES = frozenset({0, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Settings:
    """The command line, parsed; times in seconds (see ``--help``)."""

    pods: int
    quarantined: int
    profiles: int
    free_namespaces: int
    free_share: float
    pause: float
    timeout: float
    workers: int
    json_path: Path | None
    keep: bool


@dataclass(frozen=True)
class Memory:
    """One reading of a process's memory, in KiB as ``/proc/PID/status`` gives it."""

    rss_kib: int
    hwm_kib: int


@dataclass
class Phase:
    """One operator's life in the bench: how soon its profiles were Ready, its memory."""

    pods: int
    ready_seconds: float = 0.0
    settled: Memory | None = None


@dataclass
class Transition:
    """One pod's label change and when the operator's answers were seen."""

    pod: str
    namespace: str
    uid: str
    status_seconds: float | None = None
    event_seconds: float | None = None


@dataclass
class Report:
    settings: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    baseline: Phase | None = None
    loaded: Phase | None = None
    after_quarantine: Memory | None = None
    quarantine: list[Transition] = field(default_factory=list)
    release: list[Transition] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)
    #: The 1-minute load average at the start and at the end: others' work skews timings.
    load: list[float] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Memory.


def read_memory(pid: int) -> Memory:
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return Memory(rss_kib=fields["VmRSS"], hwm_kib=fields["VmHWM"])


def settled_memory(pid: int, *, window: float = 3.0, interval: float = 0.25,
                   tolerance: float = 0.02, limit: float = 60.0) -> Memory:
    """The memory of a process once its RSS holds still; the last reading after ``limit``."""
    readings: list[tuple[float, Memory]] = []
    deadline = time.monotonic() + limit
    while True:
        now = time.monotonic()
        readings.append((now, read_memory(pid)))
        recent = [m.rss_kib for t, m in readings if t >= now - window]
        if now - readings[0][0] >= window and max(recent) - min(recent) <= \
                tolerance * max(recent):
            return readings[-1][1]
        if now >= deadline:
            logger.warning("RSS of pid %d did not settle within %.0f s.", pid, limit)
            return readings[-1][1]
        time.sleep(interval)


# --------------------------------------------------------------------------------------------
# Filling the cluster.


def create_namespaces(core: kubernetes.client.CoreV1Api, names: Iterable[str]) -> None:
    names = list(names)
    for name in names:
        core.create_namespace(kubernetes.client.V1Namespace(
            metadata=kubernetes.client.V1ObjectMeta(name=name, labels={"name": name})))
    # The ServiceAccount admission plugin refuses pods until ``default`` exists.
    for name in names:
        wait_for(lambda: _has_service_account(core, name), timeout=60,
                 what=f"the default ServiceAccount of {name}")


def _has_service_account(core: kubernetes.client.CoreV1Api, namespace: str) -> bool:
    try:
        core.read_namespaced_service_account("default", namespace)
    except kubernetes.client.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def delete_namespaces(core: kubernetes.client.CoreV1Api, names: Iterable[str]) -> None:
    names = set(names)
    for name in names:
        core.delete_namespace(name)

    def gone() -> bool:
        left = {n.metadata.name for n in core.list_namespace().items if n.metadata}
        return not names & left

    wait_for(gone, timeout=180, interval=0.5, what="the baseline namespaces to be deleted")


def pod_plan(pods: int, free_share: float, governed: list[str],
             free: list[str]) -> list[tuple[str, str]]:
    """(namespace, name) of each pod: ``free_share`` of them where no profile governs."""
    outside = round(pods * free_share) if free else 0
    plan = [(governed[i % len(governed)], f"pod-{i:05d}") for i in range(pods - outside)]
    plan += [(free[i % len(free)], f"free-{i:05d}") for i in range(outside)]
    return plan


def pick_targets(plan: list[tuple[str, str]], governed: list[str],
                 count: int) -> list[tuple[str, str]]:
    """``count`` pods to quarantine, taken from the governed namespaces in turn."""
    by_namespace: dict[str, list[str]] = defaultdict(list)
    for namespace, name in plan:
        by_namespace[namespace].append(name)
    picked = [(governed[i % len(governed)], i // len(governed)) for i in range(count)]
    if any(rank >= len(by_namespace[namespace]) for namespace, rank in picked):
        raise ValueError(f"Too few pods to quarantine {count} of them.")
    return [(namespace, by_namespace[namespace][rank]) for namespace, rank in picked]


def create_pods(core: kubernetes.client.CoreV1Api, plan: list[tuple[str, str]], *,
                workers: int) -> None:
    """Create the pods from several threads; the responses are not parsed, only checked."""

    def create(namespace: str, name: str) -> None:
        body = kubernetes.client.V1Pod(
            metadata=kubernetes.client.V1ObjectMeta(
                name=name, labels={"app": "busybox", "bench": "quarantine"}),
            spec=kubernetes.client.V1PodSpec(containers=[kubernetes.client.V1Container(
                name="main", image="busybox:1.36", command=["sleep", "infinity"])]))
        for attempt in range(8):
            try:
                # Unparsed, a response costs the client next to nothing: the urllib3 one.
                response: Any = core.create_namespaced_pod(namespace, body,
                                                           _preload_content=False)
                response.read()
                response.release_conn()
                return
            except kubernetes.client.ApiException as exc:
                if exc.status == 409:
                    return  # an earlier attempt that timed out did create it
                if exc.status not in RETRIED_STATUSES:
                    raise
            except urllib3.exceptions.HTTPError:
                pass
            time.sleep(min(2.0, 0.05 * 2 ** attempt))
        raise RuntimeError(f"Could not create pod {namespace}/{name}.")

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="create-pod")
    try:
        futures = [pool.submit(create, namespace, name) for namespace, name in plan]
        for done, future in enumerate(as_completed(futures), 1):
            future.result()
            if done % 1000 == 0:
                logger.info("Created %d of %d pods.", done, len(plan))
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def count_pods(core: kubernetes.client.CoreV1Api) -> int:
    page = core.list_pod_for_all_namespaces(limit=1)
    return len(page.items) + ((page.metadata and page.metadata.remaining_item_count) or 0)


def create_profiles(custom: kubernetes.client.CustomObjectsApi, namespaces: list[str]) -> None:
    for namespace in namespaces:
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                               profile(PROFILE_NAME, namespace, {}))


def wait_ready(custom: kubernetes.client.CustomObjectsApi, namespaces: list[str], *,
               timeout: float) -> None:
    def ready() -> bool:
        found = cast(dict[str, Any], custom.list_cluster_custom_object(GROUP, VERSION, PLURAL))
        ready = {p["metadata"]["namespace"] for p in found["items"] if _is_ready(p)}
        return set(namespaces) <= ready

    wait_for(ready, timeout=timeout, interval=0.1, what="every profile to be Ready")


def _is_ready(body: dict[str, Any]) -> bool:
    state = body.get("status") or {}
    if state.get("observedGeneration") != body["metadata"].get("generation"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in state.get("conditions") or [])


# --------------------------------------------------------------------------------------------
# Watching what the operator writes.


class Observer:
    """Two watches, on profiles and on the operator's Events, and when each change arrived.

    Times are ``time.monotonic()`` at arrival, the clock the label PATCHes are timed by.
    A change is keyed by the pod's uid: entering or leaving a profile's quarantine status,
    or an Event of some reason about it.
    """

    def __init__(self, api: kubernetes.client.ApiClient) -> None:
        self._api = api
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        #: Per profile (namespace/name), the uids in its quarantine status and their entries.
        self._listed: dict[str, dict[str, dict[str, Any]]] = {}
        self.entered: dict[str, list[float]] = defaultdict(list)
        self.left: dict[str, list[float]] = defaultdict(list)
        self.entries: dict[str, dict[str, Any]] = {}
        #: (reason, uid of the involved object) to the arrival time of each such Event.
        self.events: dict[tuple[str, str], list[float]] = defaultdict(list)
        self._seen_events: set[str] = set()

    def start(self) -> None:
        custom = kubernetes.client.CustomObjectsApi(self._api)
        core = kubernetes.client.CoreV1Api(self._api)
        streams: dict[str, tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any],
                                 Callable[[dict[str, Any], float], None]]] = {
            "profiles": (custom.list_cluster_custom_object, (GROUP, VERSION, PLURAL), {},
                         self._on_profile),
            "events": (core.list_event_for_all_namespaces, (),
                       {"field_selector": f"source={OPERATOR_COMPONENT}"}, self._on_event),
        }
        for name, (func, args, kwargs, sink) in streams.items():
            thread = threading.Thread(target=self._follow, args=(func, args, kwargs, sink),
                                      name=f"watch-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def wait(self, check: Callable[[], bool], *, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(check, timeout=timeout)

    def first(self, times: list[float], *, after: float) -> float | None:
        with self._changed:
            return next((t for t in times if t >= after), None)

    def _follow(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                sink: Callable[[dict[str, Any], float], None]) -> None:
        # Short server-side timeouts let the thread notice ``stop()``; the stream resumes
        # from the last resourceVersion, and lists afresh only when that has expired.
        version: str | None = None
        while not self._stopping.is_set():
            stream = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
            events = stream.stream(  # type: ignore[no-untyped-call]
                func, *args, **kwargs, resource_version=version, timeout_seconds=5,
                deserialize=False)
            try:
                for event in events:
                    arrived = time.monotonic()
                    obj = event["object"]
                    version = obj.get("metadata", {}).get("resourceVersion", version)
                    if event["type"] in ("ADDED", "MODIFIED"):
                        with self._changed:
                            sink(obj, arrived)
                            self._changed.notify_all()
            except kubernetes.client.ApiException as exc:
                if exc.status == 410:
                    version = None
                elif not self._stopping.is_set():
                    logger.warning("A watch failed; it starts again: %s", exc)
                    time.sleep(0.2)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                if not self._stopping.is_set():
                    logger.warning("A watch lost its connection; it starts again: %s", exc)
                    time.sleep(0.2)

    def _on_profile(self, body: dict[str, Any], arrived: float) -> None:
        meta = body["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        pods = ((body.get("status") or {}).get("quarantine") or {}).get("pods") or []
        now = {p.get("uid", ""): p for p in pods}
        before = self._listed.get(key, {})
        for uid in now.keys() - before.keys():
            self.entered[uid].append(arrived)
        for uid in before.keys() - now.keys():
            self.left[uid].append(arrived)
        self.entries.update(now)
        self._listed[key] = now

    def _on_event(self, body: dict[str, Any], arrived: float) -> None:
        uid = body["metadata"]["uid"]
        if uid in self._seen_events:
            return
        self._seen_events.add(uid)
        involved = body.get("involvedObject") or {}
        self.events[body.get("reason", ""), involved.get("uid", "")].append(arrived)


# --------------------------------------------------------------------------------------------
# Quarantine and release.


def change_labels(core: kubernetes.client.CoreV1Api, observer: Observer,
                  targets: list[tuple[str, str]], *, quarantine: bool,
                  settings: Settings, report: Report) -> list[Transition]:
    """Label (or unlabel) each pod in turn and time the operator's two answers."""
    reason = "Quarantined" if quarantine else "Released"
    status_times = observer.entered if quarantine else observer.left
    patch = {"metadata": {"labels": {"quarantine": "true" if quarantine else None}}}
    results: list[Transition] = []
    for index, (namespace, name) in enumerate(targets):
        if index:
            time.sleep(settings.pause)
        issued = time.monotonic()
        pod = core.patch_namespaced_pod(name, namespace, patch, field_manager=FIELD_MANAGER,
                                        _content_type="application/merge-patch+json")
        returned = time.monotonic()
        uid = pod.metadata.uid if pod.metadata is not None else None
        if not uid:
            raise RuntimeError(f"The API server returned pod {namespace}/{name} without a uid.")
        event_times = observer.events[reason, uid]

        def answered() -> bool:
            return observer.first(status_times[uid], after=issued) is not None and \
                observer.first(event_times, after=issued) is not None

        observer.wait(answered, timeout=settings.timeout)
        seen_status = observer.first(status_times[uid], after=issued)
        seen_event = observer.first(event_times, after=issued)
        result = Transition(
            pod=name, namespace=namespace, uid=uid,
            status_seconds=None if seen_status is None else seen_status - returned,
            event_seconds=None if seen_event is None else seen_event - returned)
        if seen_status is None:
            verb = "list" if quarantine else "drop"
            report.anomalies.append(f"{namespace}/{name}: status did not {verb} the pod "
                                    f"within {settings.timeout:.0f} s.")
        if seen_event is None:
            report.anomalies.append(f"{namespace}/{name}: no {reason} Event on the Pod within "
                                    f"{settings.timeout:.0f} s.")
        logger.info("%s %s/%s: status after %s, Event after %s.", reason, namespace, name,
                    _ms(result.status_seconds), _ms(result.event_seconds))
        results.append(result)
    return results


def check_entries(observer: Observer, transitions: list[Transition], report: Report) -> None:
    """Each entry names its pod, its uid, who labelled it and since when, and isolation."""
    for t in transitions:
        entry = observer.entries.get(t.uid)
        if entry is None:
            continue
        wrong = []
        if entry.get("name") != t.pod:
            wrong.append(f"name={entry.get('name')!r}")
        if entry.get("by") != FIELD_MANAGER:
            wrong.append(f"by={entry.get('by')!r}")
        if not entry.get("since"):
            wrong.append("no since")
        if entry.get("isolated") is not True:
            wrong.append(f"isolated={entry.get('isolated')!r}")
        if wrong:
            report.anomalies.append(f"{t.namespace}/{t.pod}: status entry {', '.join(wrong)}.")


def count_events(observer: Observer, transitions: list[Transition], report: Report) -> None:
    for t in transitions:
        for reason in ("Quarantined", "Released"):
            count = len(observer.events[reason, t.uid])
            if count != 1:
                report.anomalies.append(f"{t.namespace}/{t.pod}: {count} {reason} Events on "
                                        "the Pod, not 1.")


# --------------------------------------------------------------------------------------------
# The run.


class _Bench:
    """One run's cluster, its clients, and the operator on it while one runs."""

    def __init__(self, settings: Settings, workdir: Path, report: Report) -> None:
        from hardening_operator.controlplane.cluster import LocalCluster

        self.settings = settings
        self.workdir = workdir
        self.report = report
        self.cluster = LocalCluster.create(workdir / "cluster")
        self.operator: Operator | None = None
        self.configuration = kubernetes.client.Configuration()

    def start(self) -> None:
        began = time.monotonic()
        self.cluster.start(timeout=120)
        self.cluster.kubectl("apply", "--server-side", "-f", str(PROFILE_CRD))
        wait_established(self.cluster, f"{PLURAL}.{GROUP}")
        self.report.timings["cluster_seconds"] = time.monotonic() - began
        logger.info("The cluster is up after %.1f s.", self.report.timings["cluster_seconds"])
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(self.cluster.kubeconfig), client_configuration=self.configuration)
        self.configuration.connection_pool_maxsize = self.settings.workers + 4
        api = kubernetes.client.ApiClient(self.configuration)
        self.core = kubernetes.client.CoreV1Api(api)
        self.custom = kubernetes.client.CustomObjectsApi(api)

    def namespaces(self, prefix: str) -> tuple[list[str], list[str]]:
        """Create the governed namespaces and those without a profile; their names."""
        governed = [f"{prefix}-{i}" for i in range(self.settings.profiles)]
        free = [f"{prefix}-free-{i}" for i in range(self.settings.free_namespaces)]
        create_namespaces(self.core, governed + free)
        return governed, free

    def fill(self, plan: list[tuple[str, str]]) -> None:
        began = time.monotonic()
        create_pods(self.core, plan, workers=self.settings.workers)
        seconds = time.monotonic() - began
        self.report.timings["create_pods_seconds"] = seconds
        logger.info("Created %d pods in %.1f s (%.0f/s); the cluster holds %d.", len(plan),
                    seconds, len(plan) / seconds, count_pods(self.core))

    def measure(self, governed: list[str], *, pods: int, name: str) -> Phase:
        """Start an operator, give it the profiles, and read its memory once they are Ready."""
        self.operator = Operator(self.cluster.kubeconfig, self.workdir / f"operator-{name}.log")
        self.operator.start()
        began = time.monotonic()
        create_profiles(self.custom, governed)
        wait_ready(self.custom, governed, timeout=120)
        phase = Phase(pods=pods, ready_seconds=time.monotonic() - began)
        phase.settled = settled_memory(self.operator_pid())
        logger.info("With %d pods: profiles Ready after %.2f s; RSS %s, peak %s.", pods,
                    phase.ready_seconds, _mib(phase.settled.rss_kib),
                    _mib(phase.settled.hwm_kib))
        return phase

    def operator_pid(self) -> int:
        assert self.operator is not None and self.operator.process is not None
        return self.operator.process.pid

    def stop_operator(self) -> None:
        if self.operator is not None:
            self.operator.stop()
            self.operator = None

    def stop(self) -> None:
        self.stop_operator()
        self.cluster.stop()


def run(settings: Settings, workdir: Path) -> Report:
    report = Report(settings={k: str(v) if isinstance(v, Path) else v
                              for k, v in asdict(settings).items()})
    started = time.monotonic()
    report.load.append(os.getloadavg()[0])
    bench = _Bench(settings, workdir, report)
    observer: Observer | None = None
    try:
        bench.start()
        governed, free = bench.namespaces("base")
        report.baseline = bench.measure(governed, pods=0, name="baseline")
        bench.stop_operator()
        delete_namespaces(bench.core, governed + free)

        governed, free = bench.namespaces("bench")
        plan = pod_plan(settings.pods, settings.free_share, governed, free)
        bench.fill(plan)
        report.loaded = bench.measure(governed, pods=settings.pods, name="loaded")

        observer = Observer(kubernetes.client.ApiClient(bench.configuration))
        observer.start()
        targets = pick_targets(plan, governed, settings.quarantined)
        report.quarantine = change_labels(bench.core, observer, targets, quarantine=True,
                                          settings=settings, report=report)
        check_entries(observer, report.quarantine, report)
        time.sleep(settings.pause)
        report.release = change_labels(bench.core, observer, targets, quarantine=False,
                                       settings=settings, report=report)
        # Late duplicates show only if the operator is given a moment to make them.
        time.sleep(2.0)
        count_events(observer, report.quarantine, report)
        report.after_quarantine = read_memory(bench.operator_pid())
    finally:
        if observer is not None:
            observer.stop()
        bench.stop()
        report.timings["total_seconds"] = time.monotonic() - started
        report.load.append(os.getloadavg()[0])
    return report


# --------------------------------------------------------------------------------------------
# Figures.


def percentile(samples: list[float], q: float) -> float:
    """The nearest-rank percentile ``q`` (0-100) of non-empty ``samples``."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summary(transitions: list[Transition], attribute: str) -> dict[str, Any]:
    samples = [getattr(t, attribute) for t in transitions]
    seen = [s for s in samples if s is not None]
    figures: dict[str, Any] = {"samples": len(samples), "missing": len(samples) - len(seen)}
    if seen:
        figures.update(p50=percentile(seen, 50), p99=percentile(seen, 99), max=max(seen),
                       mean=statistics.fmean(seen))
    return figures


def figures(report: Report) -> dict[str, Any]:
    """Everything the run found, as JSON-ready data; times in seconds, memory in KiB."""
    memory: dict[str, Any] = {}
    for name, phase in (("baseline", report.baseline), ("loaded", report.loaded)):
        if phase is not None and phase.settled is not None:
            memory[name] = {"pods": phase.pods, "ready_seconds": phase.ready_seconds,
                            **asdict(phase.settled)}
    if "baseline" in memory and "loaded" in memory:
        memory["growth_rss_kib"] = memory["loaded"]["rss_kib"] - memory["baseline"]["rss_kib"]
        memory["growth_hwm_kib"] = memory["loaded"]["hwm_kib"] - memory["baseline"]["hwm_kib"]
    if report.after_quarantine is not None:
        memory["after_quarantine"] = asdict(report.after_quarantine)
    return {
        "settings": report.settings,
        "timings": report.timings,
        "memory": memory,
        "latency": {
            "quarantine": {"status": summary(report.quarantine, "status_seconds"),
                           "event": summary(report.quarantine, "event_seconds")},
            "release": {"status": summary(report.release, "status_seconds"),
                        "event": summary(report.release, "event_seconds")},
        },
        "transitions": {"quarantine": [asdict(t) for t in report.quarantine],
                        "release": [asdict(t) for t in report.release]},
        "machine": {"cpus": os.cpu_count(), "load_average_1m": report.load},
        "anomalies": report.anomalies,
    }


def render(data: dict[str, Any]) -> str:
    lines = []
    memory = data["memory"]
    lines.append(f"{'operator memory':<34}{'pods':>8}{'VmRSS':>12}{'VmHWM':>12}"
                 f"{'Ready after':>13}")
    for name in ("baseline", "loaded"):
        if name in memory:
            m = memory[name]
            lines.append(f"{name:<34}{m['pods']:>8}{_mib(m['rss_kib']):>12}"
                         f"{_mib(m['hwm_kib']):>12}{m['ready_seconds']:>12.2f}s")
    if "after_quarantine" in memory:
        m = memory["after_quarantine"]
        lines.append(f"{'loaded, after the label changes':<34}{'':>8}{_mib(m['rss_kib']):>12}"
                     f"{_mib(m['hwm_kib']):>12}")
    if "growth_rss_kib" in memory:
        lines.append(f"{'growth, loaded - baseline':<34}{'':>8}"
                     f"{_mib(memory['growth_rss_kib'], signed=True):>12}"
                     f"{_mib(memory['growth_hwm_kib'], signed=True):>12}")
    lines.append("")
    lines.append(f"{'reaction, from the PATCH returning':<34}{'p50':>10}{'p99':>10}{'max':>10}"
                 f"{'n':>5}{'missing':>9}")
    for action, answers in data["latency"].items():
        for answer, label in (("status", "in status" if action == "quarantine"
                               else "out of status"),
                              ("event", "Quarantined Event" if action == "quarantine"
                               else "Released Event")):
            f = answers[answer]
            cells = [_ms(f.get(k)) for k in ("p50", "p99", "max")]
            lines.append(f"{action + ': ' + label:<34}{cells[0]:>10}{cells[1]:>10}"
                         f"{cells[2]:>10}{f['samples']:>5}{f['missing']:>9}")
    lines.append("")
    timings = data["timings"]
    lines.append("timings: " + ", ".join(f"{k.removesuffix('_seconds')} {v:.1f} s"
                                         for k, v in timings.items()))
    machine = data["machine"]
    lines.append(f"machine: {machine['cpus']} CPUs, 1-minute load average "
                 + " -> ".join(f"{x:.2f}" for x in machine["load_average_1m"]))
    lines.append("anomalies: " + ("none" if not data["anomalies"] else ""))
    lines.extend(f"  - {a}" for a in data["anomalies"])
    return "\n".join(lines)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def _mib(kib: int, *, signed: bool = False) -> str:
    return f"{kib / 1024:{'+' if signed else ''}.1f} MiB"


# --------------------------------------------------------------------------------------------
# The command.


def parse(argv: list[str] | None) -> Settings:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.quarantine",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=5000, help="pods to create (5000)")
    parser.add_argument("--quarantined", type=int, default=10,
                        help="pods to quarantine and release, one at a time (10)")
    parser.add_argument("--profiles", type=int, default=10,
                        help="namespaces with a HardeningProfile (10)")
    parser.add_argument("--free-namespaces", type=int, default=2,
                        help="namespaces without a profile, with pods too (2)")
    parser.add_argument("--free-share", type=float, default=0.1,
                        help="share of the pods in namespaces without a profile (0.1)")
    parser.add_argument("--pause", type=float, default=1.0,
                        help="seconds between two label changes (1)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds to wait for each of the operator's answers (30)")
    parser.add_argument("--workers", type=int, default=32,
                        help="threads that create pods (32)")
    parser.add_argument("--json", type=Path, default=None, dest="json_path",
                        help="write the figures to this file")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work folder (logs of the cluster and operators)")
    args = parser.parse_args(argv)
    if args.profiles < 1 or args.quarantined < 0 or args.pods < 0:
        parser.error("--profiles must be at least 1; --pods and --quarantined not negative")
    if not 0 <= args.free_share < 1:
        parser.error("--free-share is a fraction: at least 0, below 1")
    plan = pod_plan(args.pods, args.free_share, ["governed"],
                    ["free"] if args.free_namespaces else [])
    if sum(1 for namespace, _ in plan if namespace == "governed") < args.quarantined:
        parser.error("--quarantined must not exceed the pods in governed namespaces")
    return Settings(**vars(args))


def main(argv: list[str] | None = None) -> int:
    settings = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s",
                        datefmt="%H:%M:%S")
    # The bench prints its own progress; the clients' connection retries are noise here.
    logging.getLogger("urllib3").setLevel(logging.ERROR)

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    # A SIGTERM ends the run as a Ctrl-C does: through the clean-up, not around it.
    signal.signal(signal.SIGTERM, interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="hardening-bench-"))
    # After an error the work folder stays, for the logs of the cluster and the operators;
    # an interruption is nobody's error.
    keep = True
    try:
        report = run(settings, workdir)
        keep = settings.keep
    except KeyboardInterrupt:
        keep = settings.keep
        logger.warning("Interrupted; the cluster and the operator are stopped.")
        return 130
    finally:
        if keep:
            logger.info("The work folder %s is kept for its logs.", workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    data = figures(report)
    print(render(data))
    if settings.json_path is not None:
        settings.json_path.write_text(json.dumps(data, indent=2) + "\n")
        logger.info("Wrote the figures to %s.", settings.json_path)
    return 1 if report.anomalies else 0


if __name__ == "__main__":
    sys.exit(main())
