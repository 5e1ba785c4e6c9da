"""Status composition: stable when nothing changed, honest when something did."""

from __future__ import annotations

from hardening_operator.engine.status import ChildResult, compose, conditions_for


def _compose(previous, children):
    return compose(previous=previous, generation=3, mode="Enforce",
                   conditions=conditions_for(children), children=children)


def test_an_unchanged_world_composes_an_identical_status() -> None:
    children = [ChildResult("NetworkPolicy", "a", "InSync")]
    first = _compose(None, children)
    assert _compose(first, children) == first


def test_ready_insync_degraded_reflect_children() -> None:
    status = _compose(None, [ChildResult("NetworkPolicy", "a", "InSync"),
                             ChildResult("NetworkPolicy", "b", "Failed", "Invalid: no")])
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "False"
    assert conditions["Ready"]["reason"] == "ChildrenFailed"
    assert conditions["Degraded"]["status"] == "True"
    assert "NetworkPolicy/b: Invalid: no" in conditions["Degraded"]["message"]
    assert conditions["InSync"]["status"] == "True"
    assert all(c["observedGeneration"] == 3 for c in status["conditions"])


def test_a_repair_is_counted_and_remembered() -> None:
    first = _compose(None, [ChildResult("NetworkPolicy", "a", "InSync")])
    repaired = _compose(first, [ChildResult("NetworkPolicy", "a", "InSync", action="repaired",
                                            repaired_fields=["spec.ingress"],
                                            changed_by=["kubectl-edit"])])
    child = repaired["children"][0]
    assert child["repairs"] == 1 and repaired["repairs"] == 1
    assert child["lastRepair"]["fields"] == ["spec.ingress"]
    assert child["lastRepair"]["changedBy"] == ["kubectl-edit"]
    again = _compose(repaired, [ChildResult("NetworkPolicy", "a", "InSync")])
    assert again["children"][0]["repairs"] == 1
    assert again == repaired


def test_drift_counts_and_keeps_its_since_time() -> None:
    drifted = [ChildResult("NetworkPolicy", "a", "Drifted", fields=["spec.ingress"])]
    first = _compose(None, drifted)
    assert first["drifted"] == 1
    first["children"][0]["since"] = "2020-01-01T00:00:00Z"
    assert _compose(first, drifted)["children"][0]["since"] == "2020-01-01T00:00:00Z"
