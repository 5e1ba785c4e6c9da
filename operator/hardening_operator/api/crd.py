"""Generate the HardeningProfile CustomResourceDefinition from the pydantic models.

pydantic speaks JSON Schema; the API server wants a *structural* OpenAPI v3 schema. The
translation is mechanical, and doing it here rather than by hand keeps the CRD and the
operator's parser from drifting apart:

- ``$ref`` and ``$defs`` are inlined: structural schemas allow no references.
- ``X | None`` becomes plain ``X``: an optional field is one that is not required, and
  ``nullable`` would let ``null`` be stored and then mean something different to each reader.
- ``int | str`` marked ``x-kubernetes-int-or-string`` loses its ``anyOf`` of types.
- ``title``, ``default`` and ``additionalProperties: false`` go: titles are noise in
  ``kubectl explain``, defaults are the models' business (see ``v1alpha1``), and unknown
  fields are refused by strict field validation instead.

``python -m hardening_operator.api.crd`` prints the YAML; ``make crds`` writes it to
``crds/`` and a test fails when the committed file is stale.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

from hardening_operator.api import v1alpha1

_DROPPED_KEYS = {"title", "default"}


def crd() -> dict[str, Any]:
    """The CustomResourceDefinition, as a dict ready for YAML."""
    schema = {
        "type": "object",
        "description": (
            "A HardeningProfile declares the security posture of the namespace it lives in. "
            "The operator makes and keeps the objects that posture needs, and reports drift."
        ),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "The API version: hardening.plumbing.ai/v1alpha1."},
            "kind": {"type": "string", "description": "HardeningProfile."},
            "metadata": {"type": "object", "properties": {"name": {
                # The name is the value of a label on every child: at most 63 characters.
                "type": "string", "maxLength": v1alpha1.MAX_NAME_LENGTH}}},
            "spec": _structural(v1alpha1.HardeningProfileSpec),
            "status": _structural(v1alpha1.HardeningProfileStatus),
        },
    }
    schema["properties"]["spec"]["description"] = "The posture that the namespace must have."
    schema["properties"]["status"]["description"] = "What the operator observed and did."
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{v1alpha1.PLURAL}.{v1alpha1.GROUP}",
            "annotations": {
                # Argo CD applies the definition before any profile that uses it.
                "argocd.argoproj.io/sync-wave": "-10",
            },
        },
        "spec": {
            "group": v1alpha1.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": v1alpha1.KIND,
                "listKind": f"{v1alpha1.KIND}List",
                "plural": v1alpha1.PLURAL,
                "singular": v1alpha1.SINGULAR,
                "shortNames": list(v1alpha1.SHORT_NAMES),
                "categories": ["hardening"],
            },
            "versions": [
                {
                    "name": v1alpha1.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": _printer_columns(),
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def _printer_columns() -> list[dict[str, Any]]:
    return [
        {"name": "Mode", "type": "string", "jsonPath": ".status.mode",
         "description": "Enforce or Audit, as in force."},
        {"name": "Ready", "type": "string",
         "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
         "description": "Whether the namespace has the posture the profile declares."},
        {"name": "Drift", "type": "integer", "jsonPath": ".status.drifted",
         "description": "Generated objects that are not as the profile wants."},
        {"name": "Reason", "type": "string", "priority": 1,
         "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
         "description": "Why the profile is or is not ready."},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


def _structural(model: type[Any]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    definitions = raw.pop("$defs", {})
    return _convert(raw, definitions)


def _convert(node: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    node = dict(node)
    if "$ref" in node:
        target = definitions[node.pop("$ref").rsplit("/", 1)[-1]]
        merged = _convert(target, definitions)
        merged.update(_convert(node, definitions))  # siblings (a description) win
        return merged
    if "allOf" in node and len(node["allOf"]) == 1:
        inner = _convert(node.pop("allOf")[0], definitions)
        inner.update(_convert(node, definitions))
        return inner
    if "anyOf" in node:
        branches = [b for b in node.pop("anyOf") if b.get("type") != "null"]
        if node.get("x-kubernetes-int-or-string"):
            branches = []
        if len(branches) == 1:
            inner = _convert(branches[0], definitions)
            inner.update(_convert(node, definitions))
            return inner
        if branches:
            raise ValueError(f"a union of types cannot be made structural: {branches}")
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "additionalProperties" and isinstance(value, bool):
            # False: unknown fields are refused by strict validation instead. True: an
            # opaque block, which the model marks x-kubernetes-preserve-unknown-fields.
            continue
        if key == "properties":
            out[key] = {name: _convert(sub, definitions) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _convert(value, definitions)
        else:
            out[key] = value
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if "const" in out:
        out["enum"] = [out.pop("const")]
        out.setdefault("type", "string")
    return out


class _NoAliasDumper(yaml.SafeDumper):
    """Writes repeated sub-schemas out in full: YAML anchors confuse readers and tools."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render() -> str:
    header = "# Generated from hardening_operator.api.v1alpha1 by `make crds`. Do not edit.\n"
    return header + yaml.dump(crd(), Dumper=_NoAliasDumper, sort_keys=False, width=100)


if __name__ == "__main__":
    sys.stdout.write(render())
