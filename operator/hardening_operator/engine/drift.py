"""Drift: how a live object differs from what the operator last applied, the API server's way.

Comparing a live object with the desired body as plain dicts gives false alarms: the API
server adds defaults (a port's protocol), normalises values (``1000m`` CPU becomes ``1``),
and other controllers own fields of their own. Server-side apply already knows the answer,
so drift is read from it:

1. *Ownership.* After an apply, ``managedFields`` records every field the operator's field
   manager owns. When anyone else changes one of those fields (``kubectl edit``,
   ``kubectl label``, a client-side apply), the API server moves that field to their
   manager; when they remove it, it leaves our set. So a field of the desired body that is
   missing from our manager's set is drift, and ``managedFields`` also says who took it.
   Nothing has to be remembered between restarts and no request is needed.
2. *Currency.* Each applied body carries a hash of itself in an annotation. A live object
   whose hash differs from the desired body's was applied from an older spec: it is out of
   date rather than drifted, and a new apply fixes it.
3. *Values,* only where a person asks which values differ: a server-side dry-run apply
   gives the object exactly as our apply would leave it, and ``value_diff`` compares the
   owned fields of the two.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

HASH_ANNOTATION = "hardening.plumbing.ai/desired-hash"

Path = tuple[str, ...]

# Identity fields every apply body carries; they cannot drift.
_IDENTITY: set[Path] = {("apiVersion",), ("kind",), ("metadata", "name"), ("metadata", "namespace")}
HASH_PATH: Path = ("metadata", "annotations", HASH_ANNOTATION)


def desired_hash(body: dict[str, Any]) -> str:
    """A short, stable hash of a body, without its own hash annotation."""
    clean = json.loads(json.dumps(body))
    annotations = clean.get("metadata", {}).get("annotations", {})
    annotations.pop(HASH_ANNOTATION, None)
    if not annotations:
        clean.get("metadata", {}).pop("annotations", None)
    canonical = json.dumps(clean, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def stamped(body: dict[str, Any]) -> dict[str, Any]:
    """The body with its hash annotation, ready to apply."""
    out = json.loads(json.dumps(body))
    out.setdefault("metadata", {}).setdefault("annotations", {})[HASH_ANNOTATION] = desired_hash(body)
    return out


def leaf_paths(body: dict[str, Any]) -> list[Path]:
    """The fields an apply of ``body`` owns, down to scalars, lists and empty maps."""
    paths: list[Path] = []

    def walk(node: Any, prefix: Path) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, prefix + (key,))
        elif prefix not in _IDENTITY:
            paths.append(prefix)

    walk(body, ())
    return paths


def managed_fields(live: dict[str, Any], manager: str) -> dict[str, Any]:
    """The union of the field sets that ``manager`` owns through apply on the main resource."""
    merged: dict[str, Any] = {}
    for entry in live.get("metadata", {}).get("managedFields") or []:
        if entry.get("manager") == manager and entry.get("operation") == "Apply" \
                and not entry.get("subresource"):
            _merge(merged, entry.get("fieldsV1") or {})
    return merged


def owners(live: dict[str, Any], path: Path, *, exclude: str) -> list[str]:
    """Managers other than ``exclude`` that own ``path`` or a field below it."""
    names: list[str] = []
    for entry in live.get("metadata", {}).get("managedFields") or []:
        name = entry.get("manager", "")
        if name == exclude or entry.get("subresource"):
            continue
        if _contains(entry.get("fieldsV1") or {}, path) and name not in names:
            names.append(name)
    return names


@dataclass(frozen=True)
class Assessment:
    """How one live object stands against its desired body."""

    outdated: bool = False
    lost: list[Path] = field(default_factory=list)
    changed_by: list[str] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return bool(self.lost)

    @property
    def in_sync(self) -> bool:
        return not self.outdated and not self.lost


def assess(desired: dict[str, Any], live: dict[str, Any], *, manager: str) -> Assessment:
    """Compare a stamped desired body with the live object, by hash and by ownership."""
    want = desired.get("metadata", {}).get("annotations", {}).get(HASH_ANNOTATION)
    have = (live.get("metadata", {}).get("annotations") or {}).get(HASH_ANNOTATION)
    ours = managed_fields(live, manager)
    lost = [p for p in leaf_paths(desired) if p != HASH_PATH and not _contains(ours, p)]
    if want is not None and have != want:
        if _contains(ours, HASH_PATH):
            # Our own apply of an older spec: fields new in this spec are missing as a
            # matter of course, so nothing here is anybody else's doing.
            return Assessment(outdated=True)
        lost.append(HASH_PATH)
    changed_by: list[str] = []
    for path in lost:
        for name in owners(live, path, exclude=manager):
            if name not in changed_by:
                changed_by.append(name)
    return Assessment(lost=lost, changed_by=changed_by)


def value_diff(expected: dict[str, Any], live: dict[str, Any], paths: list[Path]) -> list[Path]:
    """The paths at which ``live`` holds another value than ``expected``."""
    return [p for p in paths if _get(expected, p) != _get(live, p)]


def format_path(path: Path) -> str:
    """``spec.ingress``, or ``metadata.labels[app.kubernetes.io/name]`` for dotted keys."""
    out = ""
    for part in path:
        if any(ch in part for ch in "./"):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _merge(into: dict[str, Any], fields: dict[str, Any]) -> None:
    for key, value in fields.items():
        if isinstance(value, dict):
            _merge(into.setdefault(key, {}), value)
        else:
            into.setdefault(key, value)


def _contains(fields: dict[str, Any], path: Path) -> bool:
    """Whether a fieldsV1 set owns ``path``.

    An empty set below a field means the field is owned whole: that is how atomic structs
    (a label selector) and atomic lists appear, and it covers every path inside them.
    """
    node: Any = fields
    for depth, part in enumerate(path):
        if not isinstance(node, dict):
            return False
        if depth and not node:
            return True
        key = f"f:{part}"
        if key not in node:
            return False
        node = node[key]
    return True


_MISSING = object()


def _get(obj: Any, path: Path) -> Any:
    node = obj
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node
