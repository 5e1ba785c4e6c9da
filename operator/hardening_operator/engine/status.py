"""Compose a profile's status from what one reconcile found: pure, and stable when idle.

A status is written only when it changes, so this module takes care that an unchanged
world composes an identical status: times are carried over from the previous status
unless the thing they time really changed (a condition's status, a child's state).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, Literal

State = Literal["InSync", "Drifted", "Missing", "Failed", "Conflict", "Pending"]
Action = Literal["created", "updated", "repaired", "deleted"]


@dataclass(frozen=True)
class ChildResult:
    """What reconciling one generated object found and did."""

    kind: str
    name: str
    state: State
    message: str = ""
    fields: list[str] = field(default_factory=list)
    changed_by: list[str] = field(default_factory=list)
    action: Action | None = None
    repaired_fields: list[str] = field(default_factory=list)
    #: The object's own Ready condition, where it has one (a SecretStore).
    ready: dict[str, str] | None = None

    @property
    def not_ready(self) -> bool:
        return self.ready is not None and self.ready.get("status") == "False"


@dataclass(frozen=True)
class ProfileCondition:
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def conditions_for(children: list[ChildResult]) -> list[ProfileCondition]:
    """Ready, InSync, Degraded and Conflict for a governing profile with these children."""
    drifted = [c for c in children if c.state in ("Drifted", "Missing")]
    failed = [c for c in children if c.state in ("Failed", "Conflict")]
    pending = [c for c in children if c.state == "Pending"]
    unready = [c for c in children if c.state == "InSync" and c.not_ready]

    def names(items: list[ChildResult]) -> str:
        return ", ".join(f"{c.kind}/{c.name}" for c in items[:10]) + (
            f" and {len(items) - 10} more" if len(items) > 10 else "")

    if failed:
        ready = ProfileCondition("Ready", "False", "ChildrenFailed",
                                 f"Not applied: {names(failed)}.")
    elif drifted:
        ready = ProfileCondition("Ready", "False", "Drifted",
                                 f"Not as the profile wants: {names(drifted)}.")
    elif unready:
        ready = ProfileCondition(
            "Ready", "False", "ChildrenNotReady",
            "; ".join(f"{c.kind}/{c.name} is not ready: {(c.ready or {}).get('reason', '')} "
                      f"{(c.ready or {}).get('message', '')}".strip() for c in unready[:5]))
    elif pending:
        ready = ProfileCondition("Ready", "False", "Pending",
                                 f"Waiting for their API: {names(pending)}.")
    else:
        ready = ProfileCondition("Ready", "True", "Reconciled",
                                 f"All {len(children)} generated objects are as the profile "
                                 "wants.")
    in_sync = (
        ProfileCondition("InSync", "False", "Drifted", f"Drifted or missing: {names(drifted)}.")
        if drifted else
        ProfileCondition("InSync", "True", "InSync", "No drift found.")
    )
    degraded = (
        ProfileCondition("Degraded", "True", "ChildrenFailed",
                         "; ".join(f"{c.kind}/{c.name}: {c.message}" for c in failed[:5]))
        if failed else
        ProfileCondition("Degraded", "True", "ChildrenNotReady", ready.message)
        if unready else
        ProfileCondition("Degraded", "False", "AsExpected", "Every object could be applied.")
    )
    return [ready, in_sync, degraded, _governing()]


def _governing() -> ProfileCondition:
    return ProfileCondition("Conflict", "False", "Governing",
                            "This profile governs its namespace.")


def conflict_conditions(governor: str) -> list[ProfileCondition]:
    message = (f"HardeningProfile {governor} is older and governs this namespace; this profile "
               "changes nothing while it exists.")
    return [
        ProfileCondition("Ready", "False", "Conflict", message),
        ProfileCondition("Conflict", "True", "NotGoverning", message),
    ]


def invalid_conditions(message: str) -> list[ProfileCondition]:
    return [
        ProfileCondition("Ready", "False", "InvalidSpec", message),
        ProfileCondition("Degraded", "True", "InvalidSpec", message),
        _governing(),
    ]


def compose(
    *,
    previous: dict[str, Any] | None,
    generation: int,
    mode: str | None,
    conditions: list[ProfileCondition],
    children: list[ChildResult] | None,
) -> dict[str, Any]:
    """The new status. ``children`` None keeps the previous list (nothing was looked at)."""
    previous = previous or {}
    stamp = now()
    old_conditions = {c.get("type"): c for c in previous.get("conditions") or []}
    status: dict[str, Any] = {"observedGeneration": generation}
    if mode:
        status["mode"] = mode
    rendered_conditions = []
    for cond in conditions:
        old = old_conditions.get(cond.type)
        since = old.get("lastTransitionTime") if old and old.get("status") == cond.status else None
        rendered_conditions.append({
            "type": cond.type,
            "status": cond.status,
            "reason": cond.reason,
            "message": cond.message,
            "observedGeneration": generation,
            "lastTransitionTime": since or stamp,
        })
    status["conditions"] = rendered_conditions
    if children is None:
        status["children"] = previous.get("children") or []
    else:
        status["children"] = _children(previous.get("children") or [], children, stamp)
    status["drifted"] = sum(1 for c in status["children"] if c["state"] in ("Drifted", "Missing"))
    status["repairs"] = sum(int(c.get("repairs", 0)) for c in status["children"])
    return status


def _children(old: list[dict[str, Any]], results: list[ChildResult],
              stamp: str) -> list[dict[str, Any]]:
    by_key = {(c.get("kind"), c.get("name")): c for c in old}
    out = []
    for result in results:
        prev = by_key.get((result.kind, result.name), {})
        entry: dict[str, Any] = {"kind": result.kind, "name": result.name, "state": result.state}
        if result.message:
            entry["message"] = result.message
        if result.fields:
            entry["fields"] = list(result.fields)
        if result.changed_by:
            entry["changedBy"] = list(result.changed_by)
        if result.ready:
            entry["ready"] = dict(result.ready)
        entry["since"] = prev.get("since") if prev.get("state") == result.state and \
            prev.get("since") else stamp
        repairs = int(prev.get("repairs", 0))
        last_repair = prev.get("lastRepair")
        if result.action == "repaired":
            repairs += 1
            last_repair = {"at": stamp, "fields": list(result.repaired_fields)}
            if result.changed_by:
                last_repair["changedBy"] = list(result.changed_by)
            entry.pop("changedBy", None)
        if repairs:
            entry["repairs"] = repairs
        if last_repair:
            entry["lastRepair"] = last_repair
        out.append(entry)
    return out
