"""The Argo CD health check of HardeningProfiles, run as Argo CD runs it.

Argo CD evaluates a health script with gopher-lua, a Lua 5.1, in a sandbox: the live object
is the global ``obj``, only the base library (and a few others) is loaded, and the script
returns a table ``{status = ..., message = ...}``. The tests run the script in Lua 5.1
(``lupa.lua51``) with an environment that holds ``obj`` and the base functions only, so a
script that reached for ``os``, ``io`` or ``require`` would fail here as well.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

lua51 = pytest.importorskip("lupa.lua51", reason="lupa, with its Lua 5.1, is a test dependency")

ARGOCD = Path(__file__).resolve().parents[2] / "manifests" / "argocd"
HEALTH_LUA = ARGOCD / "health.lua"
CM_PATCH = ARGOCD / "argocd-cm-patch.yaml"
HEALTH_KEY = "resource.customizations.health.hardening.plumbing.ai_HardeningProfile"

#: The base functions a sandboxed Argo CD script may call; nothing of os, io or package.
_SANDBOX = """
local source, object = ...
local env = {
  obj = object, ipairs = ipairs, pairs = pairs, next = next, type = type,
  tostring = tostring, tonumber = tonumber, error = error, pcall = pcall,
  select = select, unpack = unpack, table = table,
}
local chunk = assert(loadstring(source, "=health.lua"))
setfenv(chunk, env)
return chunk()
"""


def health(obj: dict[str, Any]) -> tuple[str, str]:
    """Run health.lua on ``obj``; the status and message of the table it returns."""
    lua = lua51.LuaRuntime(unpack_returned_tuples=False)
    run = lua.eval("function(...) " + _SANDBOX + " end")
    result = run(HEALTH_LUA.read_text(), lua.table_from(obj, recursive=True))
    assert lua.eval("type")(result) == "table", "the script must return a table"
    assert set(result.keys()) == {"status", "message"}
    return result["status"], result["message"]


def _profile(status: dict[str, Any] | None, *, generation: int = 2) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "hardening.plumbing.ai/v1alpha1",
        "kind": "HardeningProfile",
        "metadata": {"name": "plumbing-ai", "namespace": "plumbing-ai",
                     "generation": generation},
        "spec": {"mode": "Enforce"},
    }
    if status is not None:
        body["status"] = status
    return body


def _condition(kind: str, status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": reason, "message": message,
            "observedGeneration": 2, "lastTransitionTime": "2026-12-01T10:00:00Z"}


def _status(*conditions: dict[str, Any], observed: int | None = 2) -> dict[str, Any]:
    status: dict[str, Any] = {"mode": "Enforce", "conditions": list(conditions)}
    if observed is not None:
        status["observedGeneration"] = observed
    return status


HEALTHY = _status(
    _condition("Ready", "True", "Reconciled", "Every generated object is as the profile wants."),
    _condition("InSync", "True", "InSync", "No drift."),
    _condition("Degraded", "False", "AsExpected", "Every object could be applied."),
    _condition("Conflict", "False", "Governing", "This profile governs the namespace."),
)


def test_a_reconciled_profile_is_healthy() -> None:
    assert health(_profile(HEALTHY)) == (
        "Healthy", "Every generated object is as the profile wants.")


@pytest.mark.parametrize("status", [
    pytest.param(None, id="no status yet"),
    pytest.param(_status(observed=None), id="no observedGeneration"),
    pytest.param({**HEALTHY, "observedGeneration": 1}, id="status of an older generation"),
])
def test_a_profile_the_operator_has_not_caught_up_with_is_progressing(
        status: dict[str, Any] | None) -> None:
    state, message = health(_profile(status, generation=2))
    assert state == "Progressing"
    assert message.startswith("Waiting for the operator")


def test_degraded_true_is_degraded_even_when_ready_says_otherwise() -> None:
    status = _status(
        _condition("Ready", "True", "Reconciled", "Fine."),
        _condition("Degraded", "True", "ChildrenFailed", "NetworkPolicy/web: Forbidden"),
    )
    assert health(_profile(status)) == ("Degraded", "NetworkPolicy/web: Forbidden")


def test_a_profile_that_does_not_govern_its_namespace_is_degraded() -> None:
    status = _status(
        _condition("Ready", "False", "Conflict", "plumbing-ai/older governs this namespace."),
        _condition("Conflict", "True", "NotGoverning",
                   "plumbing-ai/older governs this namespace."),
    )
    assert health(_profile(status)) == (
        "Degraded", "plumbing-ai/older governs this namespace.")


@pytest.mark.parametrize("reason", ["Drifted", "ChildrenFailed", "InvalidSpec"])
def test_not_ready_for_a_lasting_reason_is_degraded(reason: str) -> None:
    status = _status(_condition("Ready", "False", reason, f"Because: {reason}."))
    assert health(_profile(status)) == ("Degraded", f"Because: {reason}.")


@pytest.mark.parametrize("reason", ["Pending", "Progressing"])
def test_not_ready_while_pending_is_progressing(reason: str) -> None:
    status = _status(_condition("Ready", "False", reason, "SecretStore CRD not served yet."))
    assert health(_profile(status)) == ("Progressing", "SecretStore CRD not served yet.")


@pytest.mark.parametrize("status", [
    pytest.param(_status(), id="no conditions"),
    pytest.param({"observedGeneration": 2}, id="conditions absent"),
    pytest.param(_status(_condition("Ready", "Unknown", "Reconciling")), id="Ready unknown"),
    pytest.param(_status(_condition("InSync", "True", "InSync")), id="no Ready condition"),
])
def test_without_a_verdict_it_is_progressing(status: dict[str, Any]) -> None:
    state, message = health(_profile(status))
    assert state == "Progressing"
    assert message


def test_the_reason_stands_in_for_an_empty_message() -> None:
    status = _status(_condition("Degraded", "True", "ChildrenFailed", ""))
    assert health(_profile(status)) == ("Degraded", "ChildrenFailed")


def test_the_configmap_patch_installs_exactly_health_lua() -> None:
    patch = yaml.safe_load(CM_PATCH.read_text())
    assert (patch["kind"], patch["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    assert patch["data"] == {HEALTH_KEY: HEALTH_LUA.read_text()}
