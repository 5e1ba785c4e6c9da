"""Drift from managedFields and the hash annotation, on objects shaped as the API returns."""

from __future__ import annotations

from typing import Any

from hardening_operator.engine.drift import assess, format_path, leaf_paths, stamped, value_diff

MANAGER = "hardening-operator"

DESIRED = stamped({
    "apiVersion": "networking.k8s.io/v1",
    "kind": "NetworkPolicy",
    "metadata": {"name": "web", "namespace": "ns",
                 "labels": {"app.kubernetes.io/managed-by": "hardening-operator"}},
    "spec": {"podSelector": {"matchLabels": {"app": "web"}},
             "policyTypes": ["Ingress"], "ingress": [{"ports": [{"port": 80}]}]},
})
HASH = DESIRED["metadata"]["annotations"]["hardening.plumbing.ai/desired-hash"]

OURS = {
    "f:metadata": {
        "f:annotations": {"f:hardening.plumbing.ai/desired-hash": {}},
        "f:labels": {"f:app.kubernetes.io/managed-by": {}},
    },
    # podSelector is an atomic struct and ingress an atomic list: owned whole.
    "f:spec": {"f:podSelector": {}, "f:policyTypes": {}, "f:ingress": {}},
}


def _live(*entries: dict[str, Any], hash_value: str = HASH) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "ns",
                     "annotations": {"hardening.plumbing.ai/desired-hash": hash_value},
                     "managedFields": list(entries)},
        "spec": {},
    }


def _entry(manager: str, fields: dict[str, Any], operation: str = "Apply") -> dict[str, Any]:
    return {"manager": manager, "operation": operation, "fieldsType": "FieldsV1",
            "fieldsV1": fields}


def test_fresh_object_is_in_sync() -> None:
    assert assess(DESIRED, _live(_entry(MANAGER, OURS)), manager=MANAGER).in_sync


def test_fields_owned_by_others_are_not_drift() -> None:
    other = _entry("kube-controller-manager", {"f:metadata": {"f:labels": {"f:extra": {}}}},
                   operation="Update")
    assert assess(DESIRED, _live(_entry(MANAGER, OURS), other), manager=MANAGER).in_sync


def test_a_field_taken_by_an_edit_is_drift_and_names_the_editor() -> None:
    ours = {"f:metadata": OURS["f:metadata"],
            "f:spec": {"f:podSelector": {}, "f:policyTypes": {}}}
    edit = _entry("kubectl-edit", {"f:spec": {"f:ingress": {}}}, operation="Update")
    found = assess(DESIRED, _live(_entry(MANAGER, ours), edit), manager=MANAGER)
    assert found.drifted and not found.outdated
    assert [format_path(p) for p in found.lost] == ["spec.ingress"]
    assert found.changed_by == ["kubectl-edit"]


def test_a_removed_label_is_drift_with_nobody_owning_it() -> None:
    ours = {"f:metadata": {"f:annotations": OURS["f:metadata"]["f:annotations"]},
            "f:spec": OURS["f:spec"]}
    found = assess(DESIRED, _live(_entry(MANAGER, ours)), manager=MANAGER)
    assert [format_path(p) for p in found.lost] == [
        "metadata.labels[app.kubernetes.io/managed-by]"]
    assert found.changed_by == []


def test_an_older_apply_of_ours_is_out_of_date_not_drift() -> None:
    found = assess(DESIRED, _live(_entry(MANAGER, OURS), hash_value="0" * 16), manager=MANAGER)
    assert found.outdated and not found.drifted


def test_a_hash_changed_by_someone_else_is_drift() -> None:
    ours = {"f:metadata": {"f:labels": OURS["f:metadata"]["f:labels"]}, "f:spec": OURS["f:spec"]}
    other = _entry("kubectl-annotate",
                   {"f:metadata": {"f:annotations": {"f:hardening.plumbing.ai/desired-hash": {}}}},
                   operation="Update")
    found = assess(DESIRED, _live(_entry(MANAGER, ours), other, hash_value="x"), manager=MANAGER)
    assert found.drifted and found.changed_by == ["kubectl-annotate"]


def test_updates_by_our_own_manager_do_not_count_as_ownership() -> None:
    # Only apply entries make our field set: an Update under our name is somebody's imitation.
    found = assess(DESIRED, _live(_entry(MANAGER, OURS, operation="Update")), manager=MANAGER)
    assert found.drifted


def test_leaf_paths_skip_identity_and_stop_at_lists_and_empty_maps() -> None:
    paths = leaf_paths({"apiVersion": "v1", "kind": "X", "metadata": {"name": "a", "namespace": "b"},
                        "spec": {"podSelector": {}, "ports": [1, 2], "n": 1}})
    assert paths == [("spec", "podSelector"), ("spec", "ports"), ("spec", "n")]


def test_value_diff_compares_only_the_given_paths() -> None:
    a = {"spec": {"x": 1, "y": {"z": [1]}, "other": 1}}
    b = {"spec": {"x": 1, "y": {"z": [2]}, "other": 2}}
    assert value_diff(a, b, [("spec", "x"), ("spec", "y", "z")]) == [("spec", "y", "z")]
