"""Quarantine by label, against the real control plane and the running operator."""

from __future__ import annotations

from typing import Any

import kubernetes
import pytest

from tests.e2e.helpers import condition, get_profile
from tests.support import THIRD_PARTY_CRDS, profile, to_yaml, wait_established, wait_for

pytestmark = pytest.mark.usefixtures("operator")

SPEC = {"networkPolicy": {"rules": [{
    "name": "web", "podSelector": {"matchLabels": {"app": "web"}},
    "ingress": [{"ports": [{"port": 8080}]}], "egress": [{"ports": [{"port": 5432}]}]}]}}


def _core(api: Any) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(api)


def _pod(api: Any, namespace: str, name: str, labels: dict[str, str]) -> None:
    def has_account() -> bool:
        accounts = _core(api).list_namespaced_service_account(namespace).items
        return any(a.metadata.name == "default" for a in accounts)

    wait_for(has_account, what="the default ServiceAccount")
    _core(api).create_namespaced_pod(namespace, {
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}})


def _selector_string(selector: dict[str, Any]) -> str:
    parts = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for e in selector.get("matchExpressions") or []:
        op = e["operator"]
        if op in ("In", "NotIn"):
            parts.append(f"{e['key']} {op.lower()} ({','.join(e['values'])})")
        elif op == "Exists":
            parts.append(e["key"])
        else:
            parts.append(f"!{e['key']}")
    return ",".join(parts)


def _selected_by(cluster: Any, api: Any, namespace: str, pod: str) -> set[str]:
    """The NetworkPolicies whose podSelector the API server says selects ``pod``."""
    chosen = set()
    for policy in kubernetes.client.NetworkingV1Api(api).list_namespaced_network_policy(
            namespace).items:
        selector = api.sanitize_for_serialization(policy.spec.pod_selector) or {}
        names = cluster.kubectl("get", "pods", "-n", namespace, "-o", "name",
                                "-l", _selector_string(selector)).stdout.split()
        if f"pod/{pod}" in names:
            chosen.add(policy.metadata.name)
    return chosen


def _quarantine_status(api: Any, namespace: str) -> dict[str, Any]:
    return (get_profile(api, namespace, "p").get("status") or {}).get("quarantine") or {}


def _events(api: Any, namespace: str, kind: str, name: str) -> list[Any]:
    return [e for e in _core(api).list_namespaced_event(namespace).items
            if e.involved_object.kind == kind and e.involved_object.name == name]


def test_a_labelled_pod_is_selected_by_the_deny_and_by_no_allow_policy(
        cluster: Any, api: Any, namespace: str) -> None:
    cluster.kubectl("apply", "-f", "-", input=to_yaml(profile("p", namespace, SPEC)))
    wait_for(lambda: len(kubernetes.client.NetworkingV1Api(api)
                         .list_namespaced_network_policy(namespace).items) == 4)
    _pod(api, namespace, "suspicious", {"app": "web"})
    assert _selected_by(cluster, api, namespace, "suspicious") == {
        "default-deny", "allow-dns", "web"}
    cluster.kubectl("label", "pod", "suspicious", "-n", namespace, "quarantine=true")
    assert _selected_by(cluster, api, namespace, "suspicious") == {"default-deny", "quarantine"}
    entry = wait_for(lambda: next(iter(_quarantine_status(api, namespace).get("pods", [])), None),
                     what="the pod in the profile's status")
    assert (entry["name"], entry["isolated"], entry["by"]) == ("suspicious", True, "kubectl-label")
    assert entry["since"]
    wait_for(lambda: any(e.reason == "Quarantined" for e in _events(api, namespace, "Pod",
                                                                      "suspicious")))
    # Release: the label goes, the pod leaves status, events say so.
    cluster.kubectl("label", "pod", "suspicious", "-n", namespace, "quarantine-")
    wait_for(lambda: _quarantine_status(api, namespace).get("pods") == [],
             what="the pod to leave status")
    wait_for(lambda: any(e.reason == "Released" for e in _events(api, namespace, "Pod",
                                                                   "suspicious")))
    wait_for(lambda: any(e.reason == "Released"
                         for e in _events(api, namespace, "HardeningProfile", "p")))


def test_a_label_set_while_the_operator_is_down_isolates_at_once_and_is_caught_up(
        cluster: Any, api: Any, namespace: str, operator: Any) -> None:
    cluster.kubectl("apply", "-f", "-", input=to_yaml(profile("p", namespace, SPEC)))
    wait_for(lambda: condition(get_profile(api, namespace, "p"), "QuarantineEnforced"))
    _pod(api, namespace, "victim", {"app": "web"})
    operator.stop()
    try:
        cluster.kubectl("label", "pod", "victim", "-n", namespace, "quarantine=true")
        assert _selected_by(cluster, api, namespace, "victim") == {"default-deny", "quarantine"}
    finally:
        operator.start()
    wait_for(lambda: [p["name"] for p in _quarantine_status(api, namespace).get("pods", [])]
             == ["victim"], timeout=20, what="status to catch up")
    wait_for(lambda: any(e.reason == "Quarantined" for e in _events(api, namespace, "Pod",
                                                                      "victim")))


def test_someone_elses_allow_all_policy_is_reported_as_a_bypass(
        cluster: Any, api: Any, namespace: str) -> None:
    cluster.kubectl("apply", "-f", "-", input=to_yaml(profile("p", namespace, SPEC)))
    _pod(api, namespace, "leaky", {"app": "web", "quarantine": "true"})
    wait_for(lambda: (condition(get_profile(api, namespace, "p"), "QuarantineEnforced") or {})
             .get("reason") == "Isolated")
    cluster.kubectl("apply", "-f", "-", input=to_yaml({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "allow-all", "namespace": namespace},
        "spec": {"podSelector": {}, "ingress": [{}], "policyTypes": ["Ingress"]}}))

    def bypass() -> dict[str, Any] | None:
        cond = condition(get_profile(api, namespace, "p"), "QuarantineEnforced") or {}
        return cond if cond.get("reason") == "BypassedByNetworkPolicy" else None

    cond = wait_for(bypass, what="the bypass to be reported")
    assert cond["status"] == "False" and "allow-all" in cond["message"]
    assert _quarantine_status(api, namespace)["bypassedBy"] == ["allow-all (Ingress)"]
    assert condition(get_profile(api, namespace, "p"), "Degraded")["status"] == "True"
    wait_for(lambda: any(e.reason == "QuarantineBypassed" and e.type == "Warning"
                         for e in _events(api, namespace, "Pod", "leaky")))


def test_edge_cases_never_look_isolated(cluster: Any, api: Any, namespace: str) -> None:
    # No profile governs the namespace: the pod is warned.
    _pod(api, namespace, "orphan", {"quarantine": "true"})
    wait_for(lambda: any(e.reason == "NotQuarantined" and e.type == "Warning"
                         for e in _events(api, namespace, "Pod", "orphan")),
             what="a warning on a pod no profile covers")
    cluster.kubectl("apply", "-f", "-", input=to_yaml(profile("p", namespace, SPEC)))
    # Another value than the configured one is not quarantine.
    _pod(api, namespace, "typo", {"quarantine": "yes"})

    def entry(name: str) -> dict[str, Any] | None:
        return next((p for p in _quarantine_status(api, namespace).get("pods", [])
                     if p["name"] == name), None)

    typo = wait_for(lambda: entry("typo"), what="the mislabelled pod in status")
    assert typo["isolated"] is False and "NOT quarantined" in typo["message"]
    # A quarantined pod deleted: it leaves status, the profile records it.
    _core(api).delete_namespaced_pod("orphan", namespace, grace_period_seconds=0)
    wait_for(lambda: entry("orphan") is None, what="the deleted pod to leave status")
    wait_for(lambda: any("deleted while quarantined" in (e.message or "")
                         for e in _events(api, namespace, "HardeningProfile", "p")))
    # Quarantine switched off while a pod is labelled: said plainly.
    _pod(api, namespace, "held", {"quarantine": "true"})
    spec = dict(SPEC, quarantine={"enabled": False})
    cluster.kubectl("apply", "-f", "-", input=to_yaml(profile("p", namespace, spec)))

    def disabled() -> bool:
        cond = condition(get_profile(api, namespace, "p"), "QuarantineEnforced") or {}
        return cond.get("reason") == "Disabled" and (entry("held") or {}).get("isolated") is False

    wait_for(disabled, what="the switched-off quarantine to be reported")
    names = {p.metadata.name for p in kubernetes.client.NetworkingV1Api(api)
             .list_namespaced_network_policy(namespace).items}
    assert "quarantine" not in names


def test_admin_tier_override_follows_quarantine_where_served(
        cluster: Any, api: Any, namespace: str) -> None:
    crd = THIRD_PARTY_CRDS / "policy.networking.k8s.io_clusternetworkpolicies.yaml"
    if not crd.is_file():
        pytest.skip(f"the ClusterNetworkPolicy CRD is not beside the checkout ({crd})")
    cluster.kubectl("apply", "-f", "-", input=to_yaml(profile("p", namespace, SPEC)))
    served = cluster.kubectl("get", "crd", "clusternetworkpolicies.policy.networking.k8s.io",
                             "--ignore-not-found", "-o", "name").stdout.strip()
    if not served:
        cond = wait_for(lambda: condition(get_profile(api, namespace, "p"), "QuarantineOverride"))
        assert (cond["status"], cond["reason"]) == ("False", "Unavailable")
        cluster.kubectl("apply", "--server-side", "-f", str(crd))
        wait_established(cluster, "clusternetworkpolicies.policy.networking.k8s.io")
    wait_for(lambda: (condition(get_profile(api, namespace, "p"), "QuarantineOverride") or {})
             .get("status") == "True", timeout=20, what="the override to be picked up")
    custom = kubernetes.client.CustomObjectsApi(api)
    name = f"hardening-quarantine-{namespace}"

    def admin_policy() -> dict[str, Any] | None:
        try:
            return custom.get_cluster_custom_object(
                "policy.networking.k8s.io", "v1alpha2", "clusternetworkpolicies", name)
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    assert admin_policy() is None, "no pod is quarantined yet"
    _pod(api, namespace, "target", {"quarantine": "true"})
    policy = wait_for(admin_policy, what="the admin-tier Deny")
    assert policy["spec"]["tier"] == "Admin"
    assert policy["spec"]["subject"]["pods"]["podSelector"] == {
        "matchLabels": {"quarantine": "true"}}
    assert [r["action"] for r in policy["spec"]["ingress"]] == ["Deny"]
    assert _quarantine_status(api, namespace).get("override") == name
    cluster.kubectl("label", "pod", "target", "-n", namespace, "quarantine-")
    wait_for(lambda: admin_policy() is None, what="the admin-tier Deny to go on release")
