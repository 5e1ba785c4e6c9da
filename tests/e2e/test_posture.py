"""The whole posture: budgets, stores, Pod Security, resource defaults; drift and repair."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import kubernetes
import pytest
import yaml

from tests.e2e.helpers import child_status, condition, get_profile, is_ready, write_requests
from tests.support import (
    SAMPLES,
    profile,
    to_yaml,
    wait_for,
)

pytestmark = pytest.mark.usefixtures("operator")

BUDGET = {"name": "backend-pdb", "minAvailable": 2,
          "selector": {"matchLabels": {"app": "web", "component": "backend"}}}
DEFAULTS = {"requests": {"cpu": "250m", "memory": "512Mi"},
            "limits": {"cpu": "1000m", "memory": "2Gi"}}
RESTRICTED = {"enforce": {"level": "restricted"}, "warn": {"level": "restricted"}}


def _apply(cluster: Any, body: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", input=to_yaml(body))


def _policy_api(api: Any) -> kubernetes.client.PolicyV1Api:
    return kubernetes.client.PolicyV1Api(api)


def _core(api: Any) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(api)


def _labels(api: Any, namespace: str) -> dict[str, str]:
    return dict(_core(api).read_namespace(namespace).metadata.labels or {})


def test_every_sample_applies_cleanly_and_becomes_ready(cluster: Any, api: Any,
                                                         store_crd: None) -> None:
    cluster.kubectl("apply", "-f", str(SAMPLES))
    try:
        wait_for(lambda: is_ready(api, "plumbing-ai", "plumbing-ai"), timeout=20,
                 what="the sample to be Ready")
        pdb = _policy_api(api).read_namespaced_pod_disruption_budget("backend-pdb", "plumbing-ai")
        assert pdb.spec.min_available == 2
        assert pdb.spec.selector.match_labels == {"app": "plumbing-ai-platform",
                                                  "component": "backend"}
        limits = _core(api).read_namespaced_limit_range("hardening-resource-defaults",
                                                        "plumbing-ai").spec.limits
        assert [(x.type, x.default_request, x.default) for x in limits] == [
            ("Container", {"cpu": "250m", "memory": "512Mi"}, {"cpu": "1", "memory": "2Gi"})]
        labels = _labels(api, "plumbing-ai")
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
        assert labels["pod-security.kubernetes.io/enforce-version"] == "latest"
        assert labels["name"] == "plumbing-ai"
        store = kubernetes.client.CustomObjectsApi(api).get_namespaced_custom_object(
            "external-secrets.io", "v1", "plumbing-ai", "secretstores", "aws-secrets-manager")
        assert store["spec"]["provider"]["aws"]["region"] == "us-west-2"
        assert store["spec"]["provider"]["aws"]["auth"]["jwt"]["serviceAccountRef"] == {
            "name": "external-secrets-sa"}
        # A fresh object shows no drift: server defaults are not drift.
        body = get_profile(api, "plumbing-ai", "plumbing-ai")
        assert body["status"]["drifted"] == 0
        assert {c["state"] for c in body["status"]["children"]} == {"InSync"}
        assert len(body["status"]["children"]) == 8
    finally:
        cluster.kubectl("delete", "-f", str(SAMPLES), "--wait=false")


def test_restricted_pod_security_refuses_a_privileged_pod(cluster: Any, api: Any,
                                                          namespace: str) -> None:
    _apply(cluster, profile("p", namespace, {"podSecurity": RESTRICTED}))
    wait_for(lambda: _labels(api, namespace).get("pod-security.kubernetes.io/enforce")
             == "restricted", what="the enforce label")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "root", "namespace": namespace},
           "spec": {"containers": [{"name": "c", "image": "busybox:1.36",
                                    "securityContext": {"privileged": True}}]}}
    result = cluster.kubectl("apply", "-f", "-", input=to_yaml(pod), check=False)
    assert result.returncode != 0
    assert "violates PodSecurity" in result.stderr and "restricted" in result.stderr


def test_pod_security_labels_leave_other_labels_alone_and_go_with_the_section(
        cluster: Any, api: Any, namespace: str) -> None:
    _core(api).patch_namespace(namespace, {"metadata": {"labels": {"team": "blue"}}})
    _apply(cluster, profile("p", namespace, {"podSecurity": RESTRICTED}))
    wait_for(lambda: "pod-security.kubernetes.io/warn" in _labels(api, namespace))
    assert _labels(api, namespace)["team"] == "blue"
    _apply(cluster, profile("p", namespace, {}))
    wait_for(lambda: not any(k.startswith("pod-security.") for k in _labels(api, namespace)),
             what="the Pod Security labels to go")
    assert _labels(api, namespace)["team"] == "blue"
    assert _labels(api, namespace)["name"] == namespace


def test_deleting_the_profile_removes_its_namespace_labels(cluster: Any, api: Any,
                                                           namespace: str) -> None:
    _apply(cluster, profile("p", namespace, {"podSecurity": RESTRICTED}))
    wait_for(lambda: "pod-security.kubernetes.io/enforce" in _labels(api, namespace))
    cluster.kubectl("delete", "hardeningprofile", "p", "-n", namespace)
    wait_for(lambda: not any(k.startswith("pod-security.") for k in _labels(api, namespace)),
             what="the labels to go with the profile")


def test_a_deleted_child_is_back_within_two_seconds(cluster: Any, api: Any,
                                                    namespace: str) -> None:
    _apply(cluster, profile("p", namespace, {"disruptionBudgets": [BUDGET],
                                             "resourceDefaults": DEFAULTS}))
    wait_for(lambda: is_ready(api, namespace, "p"))
    old = _policy_api(api).read_namespaced_pod_disruption_budget("backend-pdb", namespace)
    _policy_api(api).delete_namespaced_pod_disruption_budget("backend-pdb", namespace)

    def recreated() -> bool:
        try:
            new = _policy_api(api).read_namespaced_pod_disruption_budget("backend-pdb", namespace)
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return new.metadata.uid != old.metadata.uid

    wait_for(recreated, timeout=2.0, interval=0.05, what="the budget to be re-created")


def test_an_edit_is_repaired_and_recorded_in_enforce_mode(cluster: Any, api: Any,
                                                          namespace: str) -> None:
    _apply(cluster, profile("p", namespace, {"disruptionBudgets": [BUDGET]}))
    wait_for(lambda: is_ready(api, namespace, "p"))
    cluster.kubectl("patch", "pdb", "backend-pdb", "-n", namespace, "--type=merge",
                    "-p", '{"spec":{"minAvailable":0}}')
    wait_for(lambda: (child_status(api, namespace, "p", "PodDisruptionBudget", "backend-pdb")
                      or {}).get("repairs") == 1, timeout=2, what="the repair to be recorded")
    pdb = _policy_api(api).read_namespaced_pod_disruption_budget("backend-pdb", namespace)
    assert pdb.spec.min_available == 2
    entry = child_status(api, namespace, "p", "PodDisruptionBudget", "backend-pdb")
    assert entry["lastRepair"]["fields"] == ["spec.minAvailable"]
    assert entry["lastRepair"]["changedBy"] == ["kubectl-patch"]
    assert get_profile(api, namespace, "p")["status"]["repairs"] == 1
    wait_for(lambda: any(e.reason == "Repaired" and "backend-pdb" in e.message
                         for e in _core(api).list_namespaced_event(namespace).items),
             what="the Repaired event")


def test_an_edit_in_audit_mode_is_reported_and_left_alone(cluster: Any, api: Any,
                                                          namespace: str) -> None:
    _apply(cluster, profile("p", namespace, {"disruptionBudgets": [BUDGET]}))
    wait_for(lambda: is_ready(api, namespace, "p"))
    _apply(cluster, profile("p", namespace, {"mode": "Audit", "disruptionBudgets": [BUDGET]}))
    wait_for(lambda: get_profile(api, namespace, "p")["status"].get("mode") == "Audit")
    cluster.kubectl("patch", "pdb", "backend-pdb", "-n", namespace, "--type=merge",
                    "-p", '{"spec":{"minAvailable":1}}')
    cluster.kubectl("label", "pdb", "backend-pdb", "-n", namespace,
                    "app.kubernetes.io/managed-by-")

    def reported() -> dict[str, Any] | None:
        entry = child_status(api, namespace, "p", "PodDisruptionBudget", "backend-pdb") or {}
        wanted = {"spec.minAvailable", "metadata.labels[app.kubernetes.io/managed-by]"}
        if entry.get("state") == "Drifted" and wanted <= set(entry.get("fields", [])):
            return entry
        return None

    entry = wait_for(reported, timeout=2, what="the drift to be reported")
    assert "kubectl-patch" in entry["changedBy"]
    body = get_profile(api, namespace, "p")
    assert body["status"]["drifted"] == 1
    assert condition(body, "InSync")["status"] == "False"
    time.sleep(1)
    pdb = _policy_api(api).read_namespaced_pod_disruption_budget("backend-pdb", namespace)
    assert pdb.spec.min_available == 1, "Audit mode must not repair"


def test_removing_a_section_deletes_its_children(cluster: Any, api: Any, namespace: str) -> None:
    _apply(cluster, profile("p", namespace, {"disruptionBudgets": [BUDGET],
                                             "resourceDefaults": DEFAULTS}))
    wait_for(lambda: is_ready(api, namespace, "p"))
    _apply(cluster, profile("p", namespace, {"resourceDefaults": DEFAULTS}))
    wait_for(lambda: _policy_api(api).list_namespaced_pod_disruption_budget(namespace).items
             == [], what="the budget to be deleted")
    assert len(_core(api).list_namespaced_limit_range(namespace).items) == 1


def test_the_oldest_of_two_profiles_governs(cluster: Any, api: Any, namespace: str) -> None:
    _apply(cluster, profile("first", namespace, {"disruptionBudgets": [BUDGET]}))
    wait_for(lambda: is_ready(api, namespace, "first"))
    time.sleep(1.1)  # creation timestamps have a resolution of one second
    _apply(cluster, profile("second", namespace, {"resourceDefaults": DEFAULTS}))

    def conflicted() -> bool:
        cond = condition(get_profile(api, namespace, "second"), "Conflict")
        return cond is not None and cond["status"] == "True"

    wait_for(conflicted, what="the second profile to report a Conflict")
    assert "first" in condition(get_profile(api, namespace, "second"), "Conflict")["message"]
    assert _core(api).list_namespaced_limit_range(namespace).items == []
    # When the governor goes, the next oldest takes over.
    cluster.kubectl("delete", "hardeningprofile", "first", "-n", namespace)
    wait_for(lambda: is_ready(api, namespace, "second"), what="the second profile to govern")
    assert len(_core(api).list_namespaced_limit_range(namespace).items) == 1


def test_one_failing_child_does_not_block_the_others(cluster: Any, api: Any, namespace: str,
                                                     store_crd: None) -> None:
    bad_store = {"name": "broken", "provider": {"aws": {"service": "NoSuchService",
                                                        "region": "us-west-2"}}}
    _apply(cluster, profile("p", namespace, {"secretStores": [bad_store],
                                             "disruptionBudgets": [BUDGET]}))
    entry = wait_for(lambda: (child_status(api, namespace, "p", "SecretStore", "broken") or {})
                     .get("state") == "Failed" and
                     child_status(api, namespace, "p", "SecretStore", "broken"),
                     what="the store to be reported as Failed")
    assert "service" in entry["message"]
    assert _policy_api(api).read_namespaced_pod_disruption_budget("backend-pdb", namespace)
    body = get_profile(api, namespace, "p")
    assert condition(body, "Degraded")["status"] == "True"
    assert condition(body, "Ready")["reason"] == "ChildrenFailed"


def test_a_store_rejected_by_its_controller_shows_on_the_profile(
        cluster: Any, api: Any, namespace: str, store_crd: None) -> None:
    store = {"name": "aws", "provider": {"aws": {"service": "SecretsManager",
                                                 "region": "us-west-2"}}}
    _apply(cluster, profile("p", namespace, {"secretStores": [store]}))
    wait_for(lambda: is_ready(api, namespace, "p"))
    # Play External Secrets Operator's part: it marks the store not ready.
    kubernetes.client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
        "external-secrets.io", "v1", namespace, "secretstores", "aws",
        {"status": {"conditions": [{
            "type": "Ready", "status": "False", "reason": "InvalidProviderConfig",
            "message": "unable to validate store", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})

    def shown() -> bool:
        entry = child_status(api, namespace, "p", "SecretStore", "aws") or {}
        return (entry.get("ready") or {}).get("reason") == "InvalidProviderConfig"

    wait_for(shown, what="the store's Ready condition on the profile")
    body = get_profile(api, namespace, "p")
    assert condition(body, "Ready")["status"] == "False"
    assert "InvalidProviderConfig" in condition(body, "Ready")["message"]


def test_a_profile_left_alone_costs_no_writes(cluster: Any, api: Any, namespace: str,
                                              store_crd: None) -> None:
    sample = SAMPLES.joinpath("hardeningprofile.yaml").read_text()
    spec = next(d for d in yaml.safe_load_all(sample) if d["kind"] == "HardeningProfile")["spec"]
    _apply(cluster, profile("p", namespace, spec))
    wait_for(lambda: is_ready(api, namespace, "p"), timeout=20)
    # The API server's counters do not say who wrote: let earlier tests' namespaces finish
    # terminating (the namespace controller's deletions), and the last events arrive.
    wait_for(lambda: not [n for n in _core(api).list_namespace().items
                          if n.status.phase == "Terminating"], timeout=90,
             what="earlier namespaces to finish terminating")
    time.sleep(2)
    resources = {"hardeningprofiles", "networkpolicies", "poddisruptionbudgets", "limitranges",
                 "namespaces", "secretstores", "events"}
    before = write_requests(cluster.kubectl("get", "--raw", "/metrics").stdout, resources)
    time.sleep(60)
    after = write_requests(cluster.kubectl("get", "--raw", "/metrics").stdout, resources)
    assert after - before == Counter(), f"writes while idle: {after - before}"


def test_a_fight_over_a_child_is_given_up_and_reported(cluster: Any, api: Any,
                                                        namespace: str) -> None:
    _apply(cluster, profile("p", namespace, {"disruptionBudgets": [BUDGET]}))
    wait_for(lambda: is_ready(api, namespace, "p"))
    # Another controller with other ideas: it sets minAvailable back every time.
    for value in range(3, 10):
        cluster.kubectl("patch", "pdb", "backend-pdb", "-n", namespace, "--type=merge",
                        "-p", f'{{"spec":{{"minAvailable":{value}}}}}')
        time.sleep(0.3)

    def given_up() -> dict[str, Any] | None:
        entry = child_status(api, namespace, "p", "PodDisruptionBudget", "backend-pdb") or {}
        return entry if entry.get("state") == "Drifted" else None

    entry = wait_for(given_up, what="the operator to stop fighting")
    assert "keeps changing it" in entry["message"] and entry["changedBy"] == ["kubectl-patch"]
    assert entry["repairs"] == 5
    pdb = _policy_api(api).read_namespaced_pod_disruption_budget("backend-pdb", namespace)
    assert pdb.spec.min_available == 9, "the last change stands while repairs pause"
