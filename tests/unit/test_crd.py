"""The committed CRD is what the models generate, and it is a structural schema."""

from __future__ import annotations

from typing import Any

import yaml

from hardening_operator.api.crd import crd, render
from tests.support import CRDS

COMMITTED = CRDS / "hardening.plumbing.ai_hardeningprofiles.yaml"


def test_committed_crd_is_not_stale() -> None:
    assert COMMITTED.read_text() == render(), "run `make crds` and commit the result"


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((path, node))
        for name, sub in (node.get("properties") or {}).items():
            found.extend(_walk(sub, f"{path}.{name}"))
        if isinstance(node.get("items"), dict):
            found.extend(_walk(node["items"], f"{path}[]"))
        if isinstance(node.get("additionalProperties"), dict):
            found.extend(_walk(node["additionalProperties"], f"{path}{{}}"))
    return found


def _schema() -> dict[str, Any]:
    return crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_schema_is_structural() -> None:
    text = yaml.safe_dump(_schema())
    for forbidden in ("$ref", "$defs", "anyOf", "allOf", "oneOf", "title", "default:", "nullable"):
        assert forbidden not in text, forbidden
    for path, node in _walk(_schema()):
        if path in ("", ".metadata"):
            continue
        assert "type" in node or node.get("x-kubernetes-int-or-string"), path


def test_every_spec_field_has_a_description() -> None:
    spec = _schema()["properties"]["spec"]
    missing = [path for path, node in _walk(spec, "spec")
               if not path.endswith("[]") and not path.endswith("{}") and not node.get("description")]
    assert missing == []


def test_printer_columns_and_names() -> None:
    version = crd()["spec"]["versions"][0]
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Mode", "Ready", "Drift", "Reason", "Age"]
    assert version["subresources"] == {"status": {}}
    assert crd()["spec"]["names"]["shortNames"] == ["hp", "hardening"]
