"""The reconcile engine: one level-based pass over one profile.

A pass reads the profile and what the watches have cached, builds what should exist with the
pure builders, and converges each object with server-side apply under one field manager.
It never assumes it saw every event: whatever triggered it, it looks at everything the
profile governs. It writes only what is not already so, which makes a steady state free:
an idle profile costs no request at all.

The rules it keeps:

- It touches an object only if the profile owns it (a controller ownerReference to this
  profile's uid). An object of one of its names that somebody else made is reported as a
  conflict and left alone.
- In Audit mode it writes nothing but the profile's status.
- One object the API server refuses does not stop the others; its reason goes to status.
- Objects it made that the profile no longer wants are deleted (with a uid precondition,
  so a re-created object of the same name is never hit).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Protocol

import pydantic

from hardening_operator import metrics
from hardening_operator.api import v1alpha1
from hardening_operator.builders import build_all
from hardening_operator.builders.common import MANAGED_BY_LABEL, MANAGED_BY_VALUE, Desired, Owner
from hardening_operator.engine import drift, status
from hardening_operator.engine.kinds import OWNED_KINDS, resource_for
from hardening_operator.kube.client import ApiError, KubeClient
from hardening_operator.builders import podsecurity
from hardening_operator.builders import quarantine as quarantine_builder
from hardening_operator.engine import quarantine
from hardening_operator.engine.kinds import ADMIN_TIER_KINDS
from hardening_operator.kube.resources import HARDENING_PROFILES, NAMESPACES, PODS, Resource

logger = logging.getLogger(__name__)

FIELD_MANAGER = MANAGED_BY_VALUE
#: How soon a profile with failed children is looked at again, in seconds.
RETRY_FAILED_AFTER = 30.0
#: Repairs of one object allowed within the window before the operator stops fighting
#: whoever keeps changing it (another controller, a GitOps tool with other ideas).
REPAIR_BURST = 5
REPAIR_WINDOW = 60.0
#: How soon an Audit profile looks again at children that lost the label its watches select
#: by: no watch event would tell of their further changes.
RECHECK_UNWATCHED_AFTER = 5.0
#: Answers that say the API server, not the object, is the trouble (0: no connection).
_UNAVAILABLE = frozenset({0, 429, 502, 503, 504})
#: How many objects of one profile are applied at the same time.
APPLY_CONCURRENCY = 8


class ObjectStore(Protocol):
    """What the watches know, kept current by them; reads cost no request."""

    def profiles(self, namespace: str) -> list[dict[str, Any]]: ...

    def objects(self, kind: str, namespace: str) -> list[dict[str, Any]]: ...

    def namespace(self, name: str) -> dict[str, Any] | None: ...


class EventSink(Protocol):
    async def post(self, obj: dict[str, Any], *, reason: str, message: str,
                   warning: bool = False) -> None: ...


@dataclass(frozen=True)
class ProfileKey:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class NamespaceKey:
    """A namespace to tidy: labels of ours left on it while no profile governs it."""

    name: str

    def __str__(self) -> str:
        return self.name


def governor(profiles: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The profile that governs a namespace: the oldest live one, ties broken by name."""
    live = [p for p in profiles if not p.get("metadata", {}).get("deletionTimestamp")]
    if not live:
        return None
    return min(live, key=lambda p: (p["metadata"].get("creationTimestamp", ""),
                                    p["metadata"]["name"]))


class Reconciler:
    def __init__(self, client: KubeClient, store: ObjectStore, events: EventSink, *,
                 served: dict[str, Resource | None] | None = None) -> None:
        self.client = client
        self.store = store
        self.events = events
        #: Resources whose version is found by discovery; None while the API is absent.
        self.served = served if served is not None else {}
        #: Labelled pods already told that no profile governs their namespace.
        self._warned_ungoverned: set[str] = set()
        self._repairs = _RepairBudget()

    async def __call__(self, key: Hashable) -> float | None:
        if isinstance(key, NamespaceKey):
            await self.release_namespace(key.name)
            return None
        assert isinstance(key, ProfileKey)
        return await self.reconcile(key)

    async def release_namespace(self, namespace: str) -> None:
        """Tidy a namespace that no profile governs (any more).

        Our labels on it are given up, admin-tier quarantine policies for it are deleted
        (being cluster-scoped, the garbage collector cannot remove them), and labelled pods
        are told that nothing isolates them.
        """
        if governor(self.store.profiles(namespace)) is not None:
            return
        await self.release_namespace_labels(namespace)
        for kind in ADMIN_TIER_KINDS:
            resource = self.served.get(kind)
            for obj in self.store.objects(kind, namespace) if resource else []:
                if _labelled_for(obj, namespace):
                    await self.client.delete(resource, name=obj["metadata"]["name"],
                                             uid=obj["metadata"]["uid"])
        for pod in self.store.objects(PODS.kind, namespace):
            meta = pod["metadata"]
            if meta.get("uid") in self._warned_ungoverned:
                continue
            self._warned_ungoverned.add(meta.get("uid"))
            await self.events.post(
                _pod_ref(namespace, meta["name"], meta.get("uid", "")),
                reason="NotQuarantined", warning=True,
                message=(f"No HardeningProfile governs namespace {namespace}: the "
                         "quarantine label isolates nothing here."))

    async def release_namespace_labels(self, namespace: str) -> None:
        live = self.store.namespace(namespace)
        if live is None or live["metadata"].get("deletionTimestamp"):
            return
        if not drift.managed_fields(live, FIELD_MANAGER):
            return
        try:
            await self._apply(NAMESPACES, podsecurity.namespace_body(namespace))
        except ApiError as exc:
            if exc.status in _UNAVAILABLE:
                raise
            logger.warning("Could not remove our labels from namespace %s: %s", namespace, exc)
            return
        logger.info("Removed the Pod Security labels of a former profile from namespace %s.",
                    namespace)

    async def reconcile(self, key: ProfileKey) -> float | None:
        started = time.monotonic()
        try:
            again = await self._reconcile(key)
        except Exception:
            metrics.RECONCILES.labels(key.namespace, "error").inc()
            metrics.ERRORS.labels(key.namespace, v1alpha1.KIND).inc()
            raise
        finally:
            metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)
        metrics.RECONCILES.labels(key.namespace, "retry" if again else "done").inc()
        return again

    async def _reconcile(self, key: ProfileKey) -> float | None:
        profiles = self.store.profiles(key.namespace)
        body = next((p for p in profiles if p["metadata"]["name"] == key.name), None)
        if body is None or body["metadata"].get("deletionTimestamp"):
            # Deleted: the garbage collector removes the objects it owned; the labels it
            # put on the namespace are removed here, unless another profile takes over.
            await self.release_namespace(key.namespace)
            return None
        space = self.store.namespace(key.namespace)
        if space is not None and space["metadata"].get("deletionTimestamp"):
            # The namespace controller is emptying it: re-creating what it deletes would
            # only be refused, and everything goes with the namespace anyway.
            return None
        meta = body["metadata"]
        generation = int(meta.get("generation", 1))
        previous = body.get("status") or {}
        ruler = governor(profiles)
        if ruler is not None and ruler["metadata"]["uid"] != meta["uid"]:
            await self._write_status(body, status.compose(
                previous=previous, generation=generation, mode=None,
                conditions=status.conflict_conditions(ruler["metadata"]["name"]),
                children=[]))
            return None
        try:
            spec = v1alpha1.parse_spec(body.get("spec"))
        except pydantic.ValidationError as exc:
            message = "; ".join(
                f"spec.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
                for err in exc.errors()
            )
            await self._write_status(body, status.compose(
                previous=previous, generation=generation, mode=None,
                conditions=status.invalid_conditions(message), children=None))
            return None

        owner = Owner(name=meta["name"], namespace=key.namespace, uid=meta["uid"])
        wanted = build_all(owner, spec)
        limiter = asyncio.Semaphore(APPLY_CONCURRENCY)

        # What the last pass left in place: if it is missing now, somebody deleted it.
        existed = {(c.get("kind"), c.get("name")) for c in previous.get("children") or []
                   if c.get("state") == "InSync"}

        async def sync(desired: Desired) -> status.ChildResult:
            async with limiter:
                return await self._sync_child(owner, desired, audit=spec.mode == "Audit",
                                              existed=desired.key in existed)

        results = list(await asyncio.gather(*(sync(d) for d in wanted)))
        findings, admin = self._quarantine(owner, spec)
        if admin is not None:
            wanted.append(admin)
            results.append(await sync(admin))
            if results[-1].state == "InSync":
                findings, _ = self._quarantine(owner, spec, override=admin.name)
        if spec.mode == "Enforce":
            await self._delete_unwanted(owner, {d.key for d in wanted})
            if not any(d.kind == NAMESPACES.kind for d in wanted):
                await self.release_namespace_labels(key.namespace)
        policy = next((r for r in results if r.kind == "NetworkPolicy"
                       and r.name == quarantine_builder.POLICY_NAME), None)
        override_kind = self._admin_kind()
        conditions = status.conditions_for(results) + quarantine.conditions(
            spec, findings, policy_in_place=policy is not None and policy.state == "InSync",
            override_kind=override_kind)
        conditions = _degrade_on_bypass(conditions, findings)
        new_status = status.compose(
            previous=previous, generation=generation, mode=spec.mode,
            conditions=conditions, children=results)
        new_status["quarantine"] = quarantine.status(
            findings, override_name=admin.name if admin is not None else None)
        await self._write_status(body, new_status)
        _count(key.namespace, results, findings, previous)
        await self._record_events(body, results)
        await self._record_quarantine_events(body, previous.get("quarantine") or {}, findings)
        if any(r.state == "Failed" for r in results):
            return RETRY_FAILED_AFTER
        if any(r.state == "Drifted" for r in results) and spec.mode == "Enforce":
            return REPAIR_WINDOW  # repairs paused: try again when the window has passed
        if spec.mode == "Audit" and any(
                r.state == "Drifted" and r.kind != NAMESPACES.kind
                and self._cached(r.kind, key.namespace, r.name) is None for r in results):
            return RECHECK_UNWATCHED_AFTER
        return None

    # ----------------------------------------------------------------------------------------

    def _admin_kind(self) -> str | None:
        return next((k for k in ADMIN_TIER_KINDS if self.served.get(k) is not None), None)

    def _quarantine(self, owner: Owner, spec: v1alpha1.HardeningProfileSpec, *,
                    override: str | None = None) -> tuple[quarantine.Findings, Desired | None]:
        """The quarantine findings, and the admin-tier policy they call for, if any."""
        findings = quarantine.assess(
            spec, self.store.objects(PODS.kind, owner.namespace),
            self.store.objects("NetworkPolicy", owner.namespace),
            owner_uid=owner.uid, override=override)
        kind = self._admin_kind()
        if kind is None or not spec.quarantine.enabled or not findings.quarantined:
            return findings, None
        return findings, quarantine_builder.admin_policy(owner, spec, kind=kind)

    async def _record_quarantine_events(self, body: dict[str, Any], previous: dict[str, Any],
                                        findings: quarantine.Findings) -> None:
        namespace = body["metadata"]["namespace"]
        before = {p.get("uid"): p for p in previous.get("pods") or []}
        now = {p.uid: p for p in findings.pods + findings.ignored}
        for uid, pod in now.items():
            old = before.get(uid)
            ref = _pod_ref(namespace, pod.name, uid)
            if pod in findings.ignored:
                if old is None:
                    await self.events.post(ref, reason="NotQuarantined", message=pod.message,
                                           warning=True)
                continue
            if old is None:
                by = f" by {pod.by}" if pod.by else ""
                text = f"Pod {pod.name} quarantined{by}."
                logger.warning("Pod %s/%s is quarantined%s; isolated: %s.", namespace, pod.name,
                               by, pod.isolated, extra={"k8s_ref": {
                                   "namespace": namespace, "name": pod.name, "kind": "Pod"}})
                if pod.isolated:
                    await self.events.post(ref, reason="Quarantined",
                                           message=f"Quarantined by profile "
                                                   f"{body['metadata']['name']}: cut off "
                                                   "from all traffic but forensic peers.")
                await self.events.post(body, reason="Quarantined", message=text)
            if not pod.isolated and (old is None or old.get("isolated", True)):
                await self.events.post(ref, reason="QuarantineBypassed", message=pod.message,
                                       warning=True)
                await self.events.post(body, reason="QuarantineBypassed",
                                       message=f"Pod {pod.name}: {pod.message}", warning=True)
        for uid, old in before.items():
            if uid in now:
                continue
            name = str(old.get("name"))
            gone = await self.client.get(PODS, name=name, namespace=namespace) is None
            verb = "was deleted while quarantined" if gone else "was released from quarantine"
            logger.warning("Pod %s/%s %s.", namespace, name, verb, extra={"k8s_ref": {
                "namespace": namespace, "name": name, "kind": "Pod"}})
            if not gone:
                await self.events.post(_pod_ref(namespace, name, str(uid)), reason="Released",
                                       message="Released from quarantine: the label is gone.")
            await self.events.post(body, reason="Released", message=f"Pod {name} {verb}.")

    async def _sync_child(self, owner: Owner, desired: Desired, *, audit: bool,
                          existed: bool = False) -> status.ChildResult:
        kind, name = desired.kind, desired.name
        resource = resource_for(kind, self.served)
        if resource is None:
            return status.ChildResult(kind, name, "Pending",
                                      f"The API server does not serve {kind} (is its CRD "
                                      "installed?); it is applied once it does.")
        body = drift.stamped(desired.body)
        body["apiVersion"] = resource.api_version
        live = self._cached(kind, owner.namespace, name)
        try:
            if live is None:
                # The cache holds only objects with our label: look for one without it.
                live = await self.client.get(resource, name=name, namespace=owner.namespace)
            if live is None and not desired.owned:
                return status.ChildResult(kind, name, "Failed", f"The {kind} does not exist.")
            if live is None:
                if audit:
                    return status.ChildResult(kind, name, "Missing", "Absent; Audit mode "
                                              "does not create it.",
                                              fields=["(deleted)"] if existed else [])
                created = await self._apply(resource, body)
                if existed:
                    return status.ChildResult(kind, name, "InSync", action="repaired",
                                              repaired_fields=["(deleted)"],
                                              ready=_ready_condition(created))
                return status.ChildResult(kind, name, "InSync", action="created",
                                          ready=_ready_condition(created))
            if desired.owned and not self._may_manage(live, owner):
                holder = _controller(live)
                by = f"{holder['kind']}/{holder['name']}" if holder else "nobody"
                return status.ChildResult(
                    kind, name, "Conflict",
                    f"An object of this name exists that this profile does not own "
                    f"(controller: {by}); it is left alone.")
            found = drift.assess(body, live, manager=FIELD_MANAGER)
            holder = _controller(live)
            if desired.owned and not desired.cluster_scoped and holder is not None \
                    and holder.get("uid") != owner.uid:
                # Adopting what a former governor of the namespace left: the apply moves
                # the controller reference over to this profile.
                found = drift.Assessment(outdated=True)
            if found.in_sync:
                return status.ChildResult(kind, name, "InSync", ready=_ready_condition(live))
            fields = [drift.format_path(p) for p in found.lost]
            if audit:
                if found.outdated:
                    expected = await self._apply(resource, body, dry_run=True)
                    fields = [drift.format_path(p) for p in drift.value_diff(
                        expected, live, drift.leaf_paths(body))
                        if p != drift.HASH_PATH]
                    return status.ChildResult(kind, name, "Drifted",
                                              "Differs from the profile; Audit mode leaves it.",
                                              fields=fields)
                return status.ChildResult(kind, name, "Drifted",
                                          "Changed by someone else; Audit mode leaves it.",
                                          fields=fields, changed_by=found.changed_by)
            if found.drifted and not self._repairs.allow((owner.namespace, kind, name)):
                by = ", ".join(found.changed_by) or "another client"
                return status.ChildResult(
                    kind, name, "Drifted",
                    f"{by} keeps changing it: repaired {REPAIR_BURST} times within "
                    f"{REPAIR_WINDOW:.0f}s, so repairs pause rather than fight over it.",
                    fields=fields, changed_by=found.changed_by)
            applied = await self._apply(resource, body)
            if found.outdated:
                return status.ChildResult(kind, name, "InSync", action="updated",
                                          ready=_ready_condition(applied))
            return status.ChildResult(kind, name, "InSync", action="repaired",
                                      repaired_fields=fields, changed_by=found.changed_by,
                                      ready=_ready_condition(applied))
        except ApiError as exc:
            if exc.status in _UNAVAILABLE:
                raise  # the server is away or shedding load: the queue retries with backoff
            # Anything else, a 500 included, is about this object: the client has retried
            # it already, and the other children and the status must not wait on it.
            return status.ChildResult(kind, name, "Failed", f"{exc.reason}: {exc.message}")

    async def _apply(self, resource: Resource, body: dict[str, Any], *,
                     dry_run: bool = False) -> dict[str, Any]:
        result = await self.client.apply(resource, body, field_manager=FIELD_MANAGER,
                                         force=True, dry_run=dry_run)
        if not dry_run:
            meta = body["metadata"]
            where = f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]
            logger.info("Applied %s %s.", resource.kind, where, extra={"k8s_ref": {
                "namespace": meta.get("namespace"), "name": meta["name"], "kind": resource.kind}})
        return result

    def _cached(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        if kind == NAMESPACES.kind:
            return self.store.namespace(name)
        for obj in self.store.objects(kind, namespace):
            if obj["metadata"]["name"] == name:
                return obj
        return None

    def _may_manage(self, live: dict[str, Any], owner: Owner) -> bool:
        """Ours, or left behind by a profile of this namespace that no longer governs."""
        if _labelled_for(live, owner.namespace):
            return True
        holder = _controller(live)
        if holder is None:
            return False
        if holder.get("uid") == owner.uid:
            return True
        if holder.get("kind") != v1alpha1.KIND or \
                not str(holder.get("apiVersion", "")).startswith(v1alpha1.GROUP + "/"):
            return False
        return not any(p["metadata"]["uid"] == holder.get("uid")
                       for p in self.store.profiles(owner.namespace)
                       if not p["metadata"].get("deletionTimestamp"))

    async def _delete_unwanted(self, owner: Owner, wanted: set[tuple[str, str]]) -> None:
        for kind in OWNED_KINDS:
            resource = resource_for(kind, self.served)
            if resource is None:
                continue
            for obj in self.store.objects(kind, owner.namespace):
                holder = _controller(obj)
                if not _labelled_for(obj, owner.namespace) and (
                        holder is None or holder.get("uid") != owner.uid):
                    continue
                if (kind, obj["metadata"]["name"]) in wanted:
                    continue
                try:
                    await self.client.delete(resource, name=obj["metadata"]["name"],
                                             namespace=owner.namespace if resource.namespaced
                                             else None,
                                             uid=obj["metadata"]["uid"])
                except ApiError as exc:
                    if exc.conflict:  # the uid precondition: someone re-created it
                        continue
                    raise
                logger.info("Deleted %s %s/%s, which the profile no longer wants.",
                            kind, owner.namespace, obj["metadata"]["name"])

    async def _write_status(self, body: dict[str, Any], new: dict[str, Any]) -> None:
        if (body.get("status") or {}) == new:
            return
        meta = body["metadata"]
        patch = {
            "apiVersion": HARDENING_PROFILES.api_version,
            "kind": v1alpha1.KIND,
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
            "status": new,
        }
        try:
            await self.client.apply(HARDENING_PROFILES, patch, field_manager=FIELD_MANAGER,
                                    force=True, subresource="status")
        except ApiError as exc:
            if exc.not_found:
                return  # deleted meanwhile
            raise

    async def _record_events(self, body: dict[str, Any],
                             results: list[status.ChildResult]) -> None:
        previous = {(c.get("kind"), c.get("name")): c.get("state")
                    for c in (body.get("status") or {}).get("children") or []}
        for r in results:
            if r.action == "created":
                await self.events.post(body, reason="Created", message=f"Created {r.kind} {r.name}.")
            elif r.action == "repaired":
                by = f" (changed by {', '.join(r.changed_by)})" if r.changed_by else ""
                await self.events.post(
                    body, reason="Repaired",
                    message=f"Repaired {r.kind} {r.name}: {', '.join(r.repaired_fields)}{by}.")
            elif r.state in ("Failed", "Conflict", "Drifted") and \
                    previous.get((r.kind, r.name)) != r.state:
                await self.events.post(body, reason=r.state,
                                       message=f"{r.kind} {r.name}: {r.message}", warning=True)


class _RepairBudget:
    """At most REPAIR_BURST repairs of one object per REPAIR_WINDOW seconds."""

    def __init__(self) -> None:
        self._times: dict[tuple[str, str, str], list[float]] = {}

    def allow(self, key: tuple[str, str, str]) -> bool:
        now = time.monotonic()
        recent = [t for t in self._times.get(key, []) if now - t < REPAIR_WINDOW]
        if len(recent) >= REPAIR_BURST:
            self._times[key] = recent
            return False
        self._times[key] = [*recent, now]
        return True


def _count(namespace: str, results: list[status.ChildResult],
           findings: quarantine.Findings, previous: dict[str, Any]) -> None:
    """Count what this pass found; a state that persists is counted once, when it begins."""
    before = {(c.get("kind"), c.get("name")): c.get("state")
              for c in previous.get("children") or []}
    for r in results:
        changed = before.get((r.kind, r.name)) != r.state
        if r.action == "repaired":
            metrics.DRIFT.labels(namespace, r.kind).inc()
            metrics.REPAIRS.labels(namespace, r.kind).inc()
        elif r.state == "Drifted" and changed:
            metrics.DRIFT.labels(namespace, r.kind).inc()
        elif r.state == "Failed" and changed:
            metrics.ERRORS.labels(namespace, r.kind).inc()
    metrics.QUARANTINED.labels(namespace).set(sum(1 for p in findings.pods if p.isolated))


def _pod_ref(namespace: str, name: str, uid: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "uid": uid}}


def _labelled_for(obj: dict[str, Any], namespace: str) -> bool:
    """A cluster-scoped object the operator made for this namespace."""
    labels = obj.get("metadata", {}).get("labels") or {}
    return (not obj.get("metadata", {}).get("namespace")
            and labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE
            and labels.get(quarantine_builder.NAMESPACE_LABEL) == namespace)


def _degrade_on_bypass(conditions: list[status.ProfileCondition],
                       findings: quarantine.Findings) -> list[status.ProfileCondition]:
    """A quarantined pod that traffic still reaches makes the profile Degraded."""
    leaking = [p for p in findings.pods if not p.isolated]
    if not leaking:
        return conditions
    message = "; ".join(f"{p.name}: {p.message}" for p in leaking[:5])
    out = []
    for cond in conditions:
        if cond.type == "Degraded" and cond.status == "False":
            cond = status.ProfileCondition("Degraded", "True", "QuarantineNotIsolating", message)
        out.append(cond)
    return out


def _ready_condition(obj: dict[str, Any] | None) -> dict[str, str] | None:
    """An object's own Ready condition (a SecretStore's), to show on the profile."""
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return {k: str(cond[k]) for k in ("status", "reason", "message") if cond.get(k)}
    return None


def _controller(obj: dict[str, Any]) -> dict[str, Any] | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None
