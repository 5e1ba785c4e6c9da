"""NetworkPolicies from a profile, against the real control plane and the running operator."""

from __future__ import annotations

import uuid
from typing import Any

import kubernetes
import pytest
import yaml

from tests.e2e.helpers import get_profile, is_ready
from tests.support import SAMPLES, profile, to_yaml, wait_for

pytestmark = pytest.mark.usefixtures("operator")

NETPOL = ("networking.k8s.io", "v1", "networkpolicies")
#: Allow policies leave quarantined pods out.
NOT_QUARANTINED = {"key": "quarantine", "operator": "NotIn", "values": ["true"]}


def _custom(api: Any) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(api)


def _policies(api: Any, namespace: str) -> dict[str, dict[str, Any]]:
    items = kubernetes.client.NetworkingV1Api(api).list_namespaced_network_policy(namespace)
    return {p.metadata.name: api.sanitize_for_serialization(p) for p in items.items}


PLATFORM_SPEC = {
    "networkPolicy": {
        "rules": [{
            "name": "platform",
            "podSelector": {"matchLabels": {"app": "plumbing-ai-platform"}},
            "ingress": [{
                "from": [{"namespaceSelector": {"matchLabels": {"name": "plumbing-ai"}}}],
                "ports": [{"port": 3000}],
            }],
            "egress": [{
                "to": [{"namespaceSelector": {"matchLabels": {"name": "plumbing-ai"}}}],
                "ports": [{"port": 5432}, {"port": 6379}],
            }],
        }],
    },
}


def test_sample_applied_with_kubectl_makes_the_expected_policies(cluster: Any, api: Any,
                                                                 store_crd: None) -> None:
    cluster.kubectl("apply", "-f", str(SAMPLES))
    try:
        wait_for(lambda: is_ready(api, "plumbing-ai", "plumbing-ai"), timeout=15,
                 what="the sample profile to be Ready")
        policies = _policies(api, "plumbing-ai")
        assert set(policies) == {"default-deny", "allow-dns", "plumbing-ai-platform",
                                 "quarantine"}
        assert policies["default-deny"]["spec"] == {
            "podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
        assert policies["allow-dns"]["spec"] == {
            "podSelector": {"matchExpressions": [NOT_QUARANTINED]},
            "policyTypes": ["Egress"],
            "egress": [{
                "to": [{
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                }],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
            }],
        }
        assert policies["plumbing-ai-platform"]["spec"] == {
            "podSelector": {"matchLabels": {"app": "plumbing-ai-platform"},
                            "matchExpressions": [NOT_QUARANTINED]},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{
                "from": [{"namespaceSelector": {"matchLabels": {"name": "plumbing-ai"}}}],
                "ports": [{"protocol": "TCP", "port": 3000}],
            }],
            "egress": [{
                "to": [{"namespaceSelector": {"matchLabels": {"name": "plumbing-ai"}}}],
                "ports": [{"protocol": "TCP", "port": 5432}, {"protocol": "TCP", "port": 6379}],
            }],
        }
        table = cluster.kubectl("get", "hardeningprofiles", "-n", "plumbing-ai").stdout
        header, row = table.splitlines()[:2]
        assert header.split()[:4] == ["NAME", "MODE", "READY", "DRIFT"]
        assert row.split()[:4] == ["plumbing-ai", "Enforce", "True", "0"]
    finally:
        cluster.kubectl("delete", "-f", str(SAMPLES), "--wait=false")


def test_children_are_owned_labelled_and_carry_nothing_of_the_profile(
        cluster: Any, api: Any, namespace: str) -> None:
    body = profile("p", namespace, PLATFORM_SPEC)
    body["metadata"]["labels"] = {"app.kubernetes.io/instance": "gitops-app"}
    body["metadata"]["annotations"] = {"argocd.argoproj.io/tracking-id": "app:x/y:ns/p"}
    cluster.kubectl("apply", "-f", "-", input=to_yaml(body))
    wait_for(lambda: is_ready(api, namespace, "p"), what="the profile to be Ready")
    uid = get_profile(api, namespace, "p")["metadata"]["uid"]
    for name, policy in _policies(api, namespace).items():
        meta = policy["metadata"]
        assert meta["ownerReferences"] == [{
            "apiVersion": "hardening.plumbing.ai/v1alpha1", "kind": "HardeningProfile",
            "name": "p", "uid": uid, "controller": True}], name
        assert meta["labels"] == {"app.kubernetes.io/managed-by": "hardening-operator",
                                  "hardening.plumbing.ai/profile": "p"}, name
        assert set(meta.get("annotations", {})) == {"hardening.plumbing.ai/desired-hash"}, name
        managers = {m["manager"] for m in meta["managedFields"]}
        assert managers == {"hardening-operator"}, name


def test_editing_the_profile_is_followed(cluster: Any, api: Any, namespace: str) -> None:
    spec = yaml.safe_load(yaml.safe_dump(PLATFORM_SPEC))
    cluster.kubectl("apply", "-f", "-", input=to_yaml(profile("p", namespace, spec)))
    wait_for(lambda: is_ready(api, namespace, "p"), what="the profile to be Ready")

    # A port added.
    spec["networkPolicy"]["rules"][0]["ingress"][0]["ports"].append({"port": 3001})
    cluster.kubectl("apply", "-f", "-", input=to_yaml(profile("p", namespace, spec)))
    wait_for(lambda: [p["port"] for p in _policies(api, namespace)["platform"]["spec"]
                      ["ingress"][0]["ports"]] == [3000, 3001], what="port 3001 to appear")

    # The egress rule removed: the policy keeps ingress only.
    del spec["networkPolicy"]["rules"][0]["egress"]
    cluster.kubectl("apply", "-f", "-", input=to_yaml(profile("p", namespace, spec)))
    wait_for(lambda: _policies(api, namespace)["platform"]["spec"].get("egress") is None
             and _policies(api, namespace)["platform"]["spec"]["policyTypes"] == ["Ingress"],
             what="the egress rule to go")

    # A whole rule removed: its policy goes; DNS switched off: that policy goes too.
    spec["networkPolicy"]["rules"] = []
    spec["networkPolicy"]["allowDNS"] = False
    cluster.kubectl("apply", "-f", "-", input=to_yaml(profile("p", namespace, spec)))
    wait_for(lambda: set(_policies(api, namespace)) == {"default-deny", "quarantine"},
             what="only default-deny and quarantine to remain")
    wait_for(lambda: is_ready(api, namespace, "p"), what="the profile to be Ready again")


def test_deleting_the_profile_removes_its_policies(cluster: Any, api: Any,
                                                   namespace: str) -> None:
    cluster.kubectl("apply", "-f", "-", input=to_yaml(profile("p", namespace, PLATFORM_SPEC)))
    wait_for(lambda: len(_policies(api, namespace)) == 4, what="four policies")
    cluster.kubectl("delete", "hardeningprofile", "p", "-n", namespace)
    wait_for(lambda: _policies(api, namespace) == {}, timeout=30,
             what="the garbage collector to remove the policies")


def test_a_policy_that_someone_else_owns_is_never_overwritten(
        cluster: Any, api: Any, namespace: str) -> None:
    foreign = {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "allow-dns", "namespace": namespace},
        "spec": {"podSelector": {"matchLabels": {"team": "mine"}}, "policyTypes": ["Ingress"]},
    }
    cluster.kubectl("apply", "-f", "-", input=to_yaml(foreign))
    cluster.kubectl("apply", "-f", "-", input=to_yaml(profile("p", namespace, PLATFORM_SPEC)))

    def conflict_reported() -> bool:
        children = (get_profile(api, namespace, "p").get("status") or {}).get("children", [])
        return any(c["name"] == "allow-dns" and c["state"] == "Conflict" for c in children)

    wait_for(conflict_reported, what="the conflict on allow-dns in status")
    mine = _policies(api, namespace)["allow-dns"]
    assert mine["spec"]["podSelector"] == {"matchLabels": {"team": "mine"}}
    assert "ownerReferences" not in mine["metadata"]
    assert {"default-deny", "platform", "quarantine"} <= set(_policies(api, namespace))


def test_an_empty_spec_is_ready_and_only_arms_quarantine(cluster: Any, api: Any,
                                                         namespace: str) -> None:
    cluster.kubectl("apply", "-f", "-", input=to_yaml(profile("empty", namespace, {})))
    wait_for(lambda: is_ready(api, namespace, "empty"), what="the empty profile to be Ready")
    assert set(_policies(api, namespace)) == {"quarantine"}


def test_a_profile_in_a_terminating_namespace_does_not_stop_the_operator(
        cluster: Any, api: Any, operator: Any) -> None:
    core = kubernetes.client.CoreV1Api(api)
    doomed = f"doomed-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": doomed}})
    body = profile("p", doomed, PLATFORM_SPEC)
    # A finalizer of somebody else's keeps the profile, and so its namespace, terminating.
    body["metadata"]["finalizers"] = ["example.com/hold"]
    cluster.kubectl("apply", "-f", "-", input=to_yaml(body))
    wait_for(lambda: is_ready(api, doomed, "p"), what="the profile to be Ready")
    core.delete_namespace(doomed)
    try:
        wait_for(lambda: core.read_namespace(doomed).status.phase == "Terminating")
        wait_for(lambda: get_profile(api, doomed, "p")["metadata"].get("deletionTimestamp"),
                 timeout=30, what="the namespace controller to delete the profile")
        # The operator goes on serving other namespaces.
        other = f"alive-{uuid.uuid4().hex[:6]}"
        core.create_namespace({"metadata": {"name": other}})
        try:
            cluster.kubectl("apply", "-f", "-", input=to_yaml(profile("p", other, PLATFORM_SPEC)))
            wait_for(lambda: is_ready(api, other, "p"), what="a profile elsewhere to be Ready")
        finally:
            core.delete_namespace(other)
        assert operator.process is not None and operator.process.poll() is None
    finally:
        _custom(api).patch_namespaced_custom_object(
            "hardening.plumbing.ai", "v1alpha1", doomed, "hardeningprofiles", "p",
            {"metadata": {"finalizers": None}})
