"""Quarantine, as it stands: which pods carry the label, and whether policy cuts them off.

Pure functions over what the watches cached: the labelled pods and every NetworkPolicy of
the namespace. The operator's own policies isolate a quarantined pod by construction; what
can still let traffic reach it are policies that others made, because NetworkPolicies only
add allowed traffic. Those are found here, by evaluating their selectors against the pod's
labels exactly as the network plugin would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hardening_operator.api.v1alpha1 import QUARANTINE_LABEL_KEY, HardeningProfileSpec
from hardening_operator.engine.status import ProfileCondition


def matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector selects an object with these labels."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def allows_traffic(policy: dict[str, Any]) -> list[str]:
    """The directions (Ingress, Egress) in which a policy allows any traffic."""
    spec = policy.get("spec") or {}
    types = spec.get("policyTypes") or (["Ingress", "Egress"] if spec.get("egress")
                                        else ["Ingress"])
    directions = []
    if "Ingress" in types and spec.get("ingress"):
        directions.append("Ingress")
    if "Egress" in types and spec.get("egress"):
        directions.append("Egress")
    return directions


def label_setter(pod: dict[str, Any]) -> tuple[str | None, str | None]:
    """Who set the quarantine label and when, as far as managedFields tell."""
    found: tuple[str | None, str | None] = (None, None)
    for entry in pod.get("metadata", {}).get("managedFields") or []:
        labels = ((entry.get("fieldsV1") or {}).get("f:metadata") or {}).get("f:labels") or {}
        if f"f:{QUARANTINE_LABEL_KEY}" in labels:
            found = (entry.get("manager"), entry.get("time"))
    return found


@dataclass(frozen=True)
class PodFinding:
    name: str
    uid: str
    value: str
    isolated: bool
    message: str = ""
    by: str | None = None
    since: str | None = None
    bypassed_by: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Findings:
    pods: list[PodFinding]
    #: Pods whose label has another value than the configured one: not quarantined.
    ignored: list[PodFinding]
    bypassed_by: list[str]

    @property
    def quarantined(self) -> list[PodFinding]:
        return self.pods


def assess(spec: HardeningProfileSpec, pods: list[dict[str, Any]],
           policies: list[dict[str, Any]], *, owner_uid: str,
           override: str | None) -> Findings:
    """Which labelled pods are quarantined, and which of them policy fails to isolate."""
    settings = spec.quarantine
    foreign = [p for p in policies if not _controlled_by(p, owner_uid)]
    quarantined: list[PodFinding] = []
    ignored: list[PodFinding] = []
    bypassers: list[str] = []
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            continue
        labels = meta.get("labels") or {}
        value = labels.get(QUARANTINE_LABEL_KEY)
        if value is None:
            continue
        by, since = label_setter(pod)
        if value != settings.value:
            ignored.append(PodFinding(
                meta["name"], meta.get("uid", ""), value, isolated=False, by=by, since=since,
                message=(f"The label value {value!r} is not the profile's {settings.value!r}: "
                         "the pod is NOT quarantined.")))
            continue
        if not settings.enabled:
            quarantined.append(PodFinding(
                meta["name"], meta.get("uid", ""), value, isolated=False, by=by, since=since,
                message="Quarantine is switched off in the profile: the pod is NOT isolated."))
            continue
        leaks = []
        for policy in foreign:
            directions = allows_traffic(policy)
            if directions and matches((policy.get("spec") or {}).get("podSelector"), labels):
                leaks.append(f"{policy['metadata']['name']} ({'/'.join(directions)})")
        if leaks and override is None:
            message = ("NetworkPolicies not made by the operator still allow traffic: "
                       f"{', '.join(leaks)}.")
        elif leaks:
            message = (f"Policies not made by the operator select it ({', '.join(leaks)}); "
                       f"the admin-tier {override} denies its traffic over them.")
        else:
            message = ""
        quarantined.append(PodFinding(
            meta["name"], meta.get("uid", ""), value, isolated=not leaks or override is not None,
            by=by, since=since, message=message, bypassed_by=leaks))
        bypassers.extend(leak for leak in leaks if leak not in bypassers)
    return Findings(pods=quarantined, ignored=ignored, bypassed_by=bypassers)


def conditions(spec: HardeningProfileSpec, findings: Findings, *, policy_in_place: bool,
               override_kind: str | None) -> list[ProfileCondition]:
    """QuarantineEnforced and QuarantineOverride."""
    count = len(findings.pods)
    if not spec.quarantine.enabled:
        enforced = (ProfileCondition("QuarantineEnforced", "False", "Disabled",
                                     f"Quarantine is switched off; {count} labelled pods are "
                                     "NOT isolated.") if count else
                    ProfileCondition("QuarantineEnforced", "False", "Disabled",
                                     "Quarantine is switched off in this profile."))
    elif not policy_in_place:
        enforced = ProfileCondition("QuarantineEnforced", "False", "PolicyNotInPlace",
                                    "The quarantine NetworkPolicy is not as it must be.")
    elif any(not p.isolated for p in findings.pods):
        enforced = ProfileCondition("QuarantineEnforced", "False", "BypassedByNetworkPolicy",
                                    "Quarantined pods are still reachable through "
                                    f"NetworkPolicies: {', '.join(findings.bypassed_by)}.")
    elif count:
        enforced = ProfileCondition("QuarantineEnforced", "True", "Isolated",
                                    f"{count} quarantined pods are cut off.")
    else:
        enforced = ProfileCondition("QuarantineEnforced", "True", "Armed",
                                    "No pod is quarantined; a labelled pod is cut off at once.")
    if override_kind:
        override = ProfileCondition("QuarantineOverride", "True", override_kind,
                                    f"An admin-tier {override_kind} Deny backs quarantine "
                                    "over every NetworkPolicy.")
    else:
        override = ProfileCondition("QuarantineOverride", "False", "Unavailable",
                                    "The cluster serves neither ClusterNetworkPolicy nor "
                                    "AdminNetworkPolicy: quarantine rests on NetworkPolicies "
                                    "alone, which others' policies can bypass.")
    return [enforced, override]


def status(findings: Findings, *, override_name: str | None) -> dict[str, Any]:
    def entry(p: PodFinding) -> dict[str, Any]:
        out: dict[str, Any] = {"name": p.name, "uid": p.uid, "isolated": p.isolated}
        if p.since:
            out["since"] = p.since
        if p.by:
            out["by"] = p.by
        if p.message:
            out["message"] = p.message
        return out

    result: dict[str, Any] = {"pods": [entry(p) for p in findings.pods + findings.ignored]}
    if findings.bypassed_by:
        result["bypassedBy"] = list(findings.bypassed_by)
    if override_name:
        result["override"] = override_name
    return result


def _controlled_by(obj: dict[str, Any], uid: str) -> bool:
    return any(ref.get("controller") and ref.get("uid") == uid
               for ref in obj.get("metadata", {}).get("ownerReferences") or [])
