"""Faults: the operator killed, the control plane restarted or shedding load, deletes missed.

Every test here has a control plane and an operator of its own, since it kills, restarts
or throttles them; the session's cluster and operator stay undisturbed. What each test
asserts afterwards is the same end state, checked from the cluster rather than from the
operator's word: every profile Ready for its generation, each profile's children exactly
the set it wants (nothing left over, nothing twice), and no managed object without a live
owner.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import random
import re
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import urllib3
import yaml

from hardening_operator.api.v1alpha1 import parse_spec
from hardening_operator.builders import build_all
from hardening_operator.builders.common import MANAGED_SELECTOR, Owner
from hardening_operator.builders.podsecurity import LABEL_PREFIX
from hardening_operator.engine.drift import HASH_ANNOTATION
from hardening_operator.engine.reconciler import FIELD_MANAGER
from tests.conftest import _wait_for_garbage_collection_of_profiles
from tests.e2e.helpers import GROUP, PLURAL, VERSION, get_profile, is_ready
from tests.support import (
    PROFILE_CRD,
    REPO,
    SAMPLES,
    STORE_CRD,
    Operator,
    wait_established,
    wait_for,
)

pytestmark = pytest.mark.slow

#: Kill-and-restart rounds while profiles converge, and how many profiles converge.
KILL_ROUNDS = 10
KILL_PROFILES = 30
#: The latest moment, in seconds after the operator has logged in, at which it is killed:
#: about the time 30 profiles take to converge on a loaded two-core machine, so that most
#: kills land in the middle of the work and a few after it.
KILL_WITHIN = 2.5
#: Limits that make the API server refuse work with 429 at once. Priority and fairness
#: would queue requests instead (and sum these into its own concurrency), so it is off, and
#: the plain in-flight limits apply: three reads and one write at a time.
SHEDDING = ["--max-requests-inflight=3", "--max-mutating-requests-inflight=1",
            "--enable-priority-and-fairness=false"]
#: Seconds the operator has to converge changes made after a control plane restart.
AFTER_OUTAGE = 60.0

_STORES = ("external-secrets.io", "v1", "secretstores")


# --------------------------------------------------------------------------------------------
# A control plane and an operator per test.


@pytest.fixture
def cluster_args() -> list[str]:
    """Extra kube-apiserver flags; a test parametrizes this to throttle its server."""
    return []


@pytest.fixture
def cluster(tmp_path: Path, cluster_args: list[str]) -> Iterator[Any]:
    from hardening_operator.controlplane.cluster import LocalCluster

    local = LocalCluster.create(tmp_path / "control-plane")
    local.extra_apiserver_args = list(cluster_args)
    local.start(timeout=120)
    try:
        local.kubectl("apply", "--server-side", "-f", str(PROFILE_CRD))
        if STORE_CRD.is_file():
            local.kubectl("apply", "--server-side", "-f", str(STORE_CRD))
            wait_established(local, "secretstores.external-secrets.io")
        wait_established(local, "hardeningprofiles.hardening.plumbing.ai")
        yield local
    finally:
        local.stop()


@pytest.fixture
def api(cluster: Any) -> Any:
    return kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))


@pytest.fixture
def runner(cluster: Any, tmp_path: Path) -> Iterator[Operator]:
    """The operator, not yet started; stopped (and its errors shown) at the end."""
    operator = Operator(cluster.kubeconfig, tmp_path / "operator.log")
    try:
        yield operator
    finally:
        operator.stop()
        _show_errors(operator)


def _show_errors(operator: Operator) -> None:
    if not operator.log.is_file():
        return
    errors = [line for line in operator.logs().splitlines()
              if '"level": "error"' in line or '"level": "critical"' in line]
    if errors:
        print(f"{len(errors)} error lines in {operator.log}; the first ones:")
        print("\n".join(line[:400] for line in errors[:10]))


# --------------------------------------------------------------------------------------------
# Profiles and what they should have made.


def _sample_spec() -> dict[str, Any]:
    docs = yaml.safe_load_all((SAMPLES / "hardeningprofile.yaml").read_text())
    spec = copy.deepcopy(next(d for d in docs if d and d["kind"] == "HardeningProfile")["spec"])
    if not STORE_CRD.is_file():
        spec.pop("secretStores", None)
    return spec


def _variants() -> list[dict[str, Any]]:
    """Specs that differ from the sample in a child's value, or in which children exist."""
    base = _sample_spec()
    stricter = copy.deepcopy(base)
    stricter["disruptionBudgets"][0]["minAvailable"] = 3
    wider = copy.deepcopy(base)
    wider["networkPolicy"]["rules"].append(
        {"name": "metrics", "ingress": [{"ports": [{"port": 9090}]}]})
    leaner = copy.deepcopy(base)
    del leaner["resourceDefaults"], leaner["podSecurity"]
    return [base, stricter, wider, leaner]


def _custom(api: Any) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(api)


def _retrying(call: Any, *args: Any, **kwargs: Any) -> Any:
    """Call the API, riding out the seconds after a restart when the server sheds requests."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return call(*args, **kwargs)
        except kubernetes.client.ApiException as exc:
            if exc.status not in (429, 500, 503, 504) or time.monotonic() > deadline:
                raise
        except urllib3.exceptions.HTTPError:  # a connection refused or dropped
            if time.monotonic() > deadline:
                raise
        time.sleep(0.5)


def _create_profile(api: Any, namespace: str, spec: dict[str, Any]) -> None:
    core = kubernetes.client.CoreV1Api(api)
    _retrying(core.create_namespace,
              {"metadata": {"name": namespace, "labels": {"name": namespace}}})
    _retrying(_custom(api).create_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "HardeningProfile",
        "metadata": {"name": namespace, "namespace": namespace}, "spec": spec})


def _set_spec(api: Any, namespace: str, spec: dict[str, Any]) -> None:
    body = _retrying(get_profile, api, namespace, namespace)
    body["spec"] = spec
    _retrying(_custom(api).replace_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL,
              namespace, body)


def _wait_ready(api: Any, namespaces: list[str], *, timeout: float, what: str) -> None:
    def all_ready() -> bool:
        return all(is_ready(api, ns, ns) for ns in namespaces)

    wait_for(lambda: _retrying(all_ready), timeout=timeout, interval=0.5, what=what)


def _converged(api: Any, namespaces: list[str]) -> int:
    """How many of these profiles are Ready for their generation, in one LIST."""
    count = 0
    for body in _custom(api).list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]:
        status = body.get("status") or {}
        if body["metadata"]["namespace"] in namespaces and \
                status.get("observedGeneration") == body["metadata"]["generation"] and \
                any(c["type"] == "Ready" and c["status"] == "True"
                    for c in status.get("conditions") or []):
            count += 1
    return count


def _managed_children(api: Any) -> list[dict[str, Any]]:
    """Every object in the cluster that carries the operator's managed-by label."""
    found: list[dict[str, Any]] = []
    clients = kubernetes.client
    for kind, listing in (
        ("NetworkPolicy",
         clients.NetworkingV1Api(api).list_network_policy_for_all_namespaces),
        ("PodDisruptionBudget",
         clients.PolicyV1Api(api).list_pod_disruption_budget_for_all_namespaces),
        ("LimitRange", clients.CoreV1Api(api).list_limit_range_for_all_namespaces),
    ):
        for item in listing(label_selector=MANAGED_SELECTOR).items:
            found.append({"kind": kind, "namespace": item.metadata.namespace,
                          "name": item.metadata.name,
                          "owners": [r.to_dict() for r in item.metadata.owner_references or []]})
    if STORE_CRD.is_file():
        stores = _custom(api).list_cluster_custom_object(*_STORES, label_selector=MANAGED_SELECTOR)
        for item in stores["items"]:
            meta = item["metadata"]
            found.append({"kind": "SecretStore", "namespace": meta["namespace"],
                          "name": meta["name"], "owners": [
                              {"uid": r["uid"], "controller": r.get("controller"),
                               "kind": r["kind"], "name": r["name"]}
                              for r in meta.get("ownerReferences") or []]})
    return found


def _pod_security_labels(api: Any, namespace: str) -> dict[str, str]:
    labels = kubernetes.client.CoreV1Api(api).read_namespace(namespace).metadata.labels or {}
    return {k: v for k, v in labels.items() if k.startswith(LABEL_PREFIX)}


def _assert_exactly_what_profiles_want(api: Any, namespaces: list[str], context: str) -> None:
    """Each profile's children are its wanted set, once each, owned by it; no orphans."""
    profiles = {ns: get_profile(api, ns, ns) for ns in namespaces}
    live_uids = {p["metadata"]["uid"] for p in _custom(api).list_cluster_custom_object(
        GROUP, VERSION, PLURAL)["items"]}
    children = _managed_children(api)
    orphans = [c for c in children if not any(
        o.get("controller") and o["uid"] in live_uids for o in c["owners"])]
    assert orphans == [], f"{context}: managed objects without a live owner: {orphans}"
    for namespace, body in profiles.items():
        owner = Owner(name=namespace, namespace=namespace, uid=body["metadata"]["uid"])
        wanted = build_all(owner, parse_spec(body["spec"]))
        expected = sorted((d.kind, d.name) for d in wanted if d.owned)
        found = sorted((c["kind"], c["name"]) for c in children if c["namespace"] == namespace)
        assert found == expected, f"{context}: {namespace} has {found}, wants {expected}"
        for child in (c for c in children if c["namespace"] == namespace):
            assert [o["uid"] for o in child["owners"]] == [owner.uid], (
                f"{context}: {child['kind']} {namespace}/{child['name']} is owned by "
                f"{child['owners']}, not only by its profile")
        states = {(c["kind"], c["name"]): c["state"] for c in body["status"]["children"]}
        assert set(states.values()) == {"InSync"}, f"{context}: {namespace}: {states}"
        labels = _pod_security_labels(api, namespace)
        wants_labels = any(d.kind == "Namespace" for d in wanted)
        assert bool(labels) == wants_labels, f"{context}: {namespace} has labels {labels}"


# --------------------------------------------------------------------------------------------
# The operator killed while it works.


def test_kill_nine_while_converging_leaves_no_duplicate_and_no_orphan(
        api: Any, runner: Operator) -> None:
    seed = int(os.environ.get("FAULT_SEED") or random.SystemRandom().randrange(2**32))
    print(f"kill -9 rounds: seed {seed} (FAULT_SEED={seed} repeats them)")
    rng = random.Random(seed)
    variants = _variants()
    namespaces = [f"kill-{i:02d}" for i in range(KILL_PROFILES)]
    for namespace in namespaces:
        _create_profile(api, namespace, variants[0])
    for round_ in range(KILL_ROUNDS):
        # While it is down, some profiles change what they want: the next run has to
        # create, update and delete children, and a kill lands somewhere in between.
        if round_:
            for namespace in rng.sample(namespaces, k=KILL_PROFILES // 3):
                _set_spec(api, namespace, rng.choice(variants))
        runner.start()
        delay = rng.uniform(0.0, KILL_WITHIN)
        time.sleep(delay)
        runner.kill()
        print(f"round {round_}: killed {delay:.2f} s after login, with "
              f"{_converged(api, namespaces)}/{KILL_PROFILES} profiles converged")
    runner.start()
    _wait_ready(api, namespaces, timeout=120, what=f"every profile to converge (seed {seed})")
    # Settle: a last watch event may still be on its way; the state must hold, not pass by.
    time.sleep(2)
    _assert_exactly_what_profiles_want(api, namespaces, f"seed {seed}")


# --------------------------------------------------------------------------------------------
# The control plane restarted under a running operator.


@pytest.mark.parametrize("component", ["kube-apiserver", "etcd"])
def test_operator_recovers_by_itself_from_a_restart_of(
        component: str, cluster: Any, api: Any, runner: Operator) -> None:
    spec = _sample_spec()
    namespaces = ["before-0", "before-1"]
    for namespace in namespaces:
        _create_profile(api, namespace, spec)
    runner.start()
    _wait_ready(api, namespaces, timeout=60, what="the profiles to be Ready before the outage")
    assert runner.process is not None
    pid = runner.process.pid

    if component == "etcd":
        cluster.restart_etcd()
    else:
        cluster.restart_apiserver()

    # Changes after the outage reach the operator only through watches it re-opened.
    _create_profile(api, "after", spec)
    edited = copy.deepcopy(spec)
    edited["disruptionBudgets"][0]["minAvailable"] = 3
    _set_spec(api, "before-0", edited)
    _retrying(kubernetes.client.NetworkingV1Api(api).delete_namespaced_network_policy,
              "default-deny", "before-1")
    _wait_ready(api, ["after", "before-0"], timeout=AFTER_OUTAGE,
                what=f"changes after the {component} restart to converge")
    budget = kubernetes.client.PolicyV1Api(api).read_namespaced_pod_disruption_budget(
        "backend-pdb", "before-0")
    assert budget.spec.min_available == 3
    wait_for(lambda: _retrying(
        kubernetes.client.NetworkingV1Api(api).list_namespaced_network_policy, "before-1",
        field_selector="metadata.name=default-deny").items, timeout=AFTER_OUTAGE,
        what="the deleted policy to be repaired")
    assert runner.process is not None and runner.process.pid == pid
    assert runner.process.poll() is None, "the operator exited"
    _assert_exactly_what_profiles_want(api, [*namespaces, "after"], f"after {component}")


# --------------------------------------------------------------------------------------------
# An API server that sheds load.


def _service_account_kubeconfig(cluster: Any, folder: Path) -> Path:
    """A kubeconfig for the operator's own ServiceAccount, with the operator's ClusterRole.

    The admin is in system:masters, which the in-flight limits exempt; the operator has to
    run as what it is in a real cluster to meet them.
    """
    for manifest in ("namespace.yaml", "serviceaccount.yaml", "clusterrole.yaml",
                     "clusterrolebinding.yaml"):
        cluster.kubectl("apply", "-f", str(REPO / "manifests" / manifest))
    token = cluster.kubectl("create", "token", "hardening-operator", "-n",
                            "hardening-operator", "--duration=1h").stdout.strip()
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "operator",
        "clusters": [{"name": "local", "cluster": {
            "server": cluster.server,
            "certificate-authority-data": base64.b64encode(
                cluster.certs.ca.cert.read_bytes()).decode()}}],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "local", "user": "operator"}}],
    }
    path = folder / "operator.kubeconfig"
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


def _refusals(cluster: Any) -> Counter[str]:
    """The requests the API server has answered with 429 so far, by verb and resource."""
    found: Counter[str] = Counter()
    for line in cluster.kubectl("get", "--raw", "/metrics").stdout.splitlines():
        if line.startswith("apiserver_request_total{") and 'code="429"' in line:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
            found[f"{labels.get('verb')} {labels.get('resource')}"] += int(
                float(line.rsplit(" ", 1)[1]))
    return found


@pytest.mark.parametrize("cluster_args", [SHEDDING], ids=["inflight-3-1"])
def test_operator_backs_off_and_converges_when_the_api_server_sheds_load(
        cluster: Any, api: Any, tmp_path: Path) -> None:
    operator = Operator(_service_account_kubeconfig(cluster, tmp_path), tmp_path / "op.log")
    namespaces = [f"shed-{i:02d}" for i in range(20)]
    for namespace in namespaces:
        _create_profile(api, namespace, _sample_spec())
    refused_before = _refusals(cluster)
    operator.start()
    try:
        _wait_ready(api, namespaces, timeout=180, what="20 profiles to converge under 429s")
        refused = _refusals(cluster) - refused_before
        print(f"the API server answered 429 while 20 profiles converged: {dict(refused)}")
        # The engine's own writes were among them, not only Kopf's lists.
        assert sum(n for key, n in refused.items() if key.startswith(("APPLY", "PATCH"))), (
            f"no write was refused, so nothing shows that the engine backs off: {refused}")
        assert operator.process is not None and operator.process.poll() is None
        _assert_exactly_what_profiles_want(api, namespaces, "under load shedding")
    finally:
        operator.stop()
        _show_errors(operator)


# --------------------------------------------------------------------------------------------
# A delete the operator did not see.


def test_profile_deleted_while_the_operator_is_down_leaves_nothing_behind(
        cluster: Any, api: Any, runner: Operator) -> None:
    core = kubernetes.client.CoreV1Api(api)
    spec = _sample_spec()
    with ThreadPoolExecutor(max_workers=1) as pool:
        # The garbage collector learns of the profile kind on a periodic re-discovery;
        # wait for that beside the rest of the setup.
        collector_ready = pool.submit(_wait_for_garbage_collection_of_profiles, cluster)
        # "gone" is deleted while the operator is down; "reborn" is deleted and at once
        # created again, so its children have an owner that no longer exists, and a
        # successor that the garbage collector and the operator race to serve.
        for namespace in ("gone", "reborn"):
            _create_profile(api, namespace, spec)
        runner.start()
        _wait_ready(api, ["gone", "reborn"], timeout=60, what="the profiles to be Ready")
        assert _pod_security_labels(api, "gone")
        collector_ready.result()
    runner.stop()

    for namespace in ("gone", "reborn"):
        _custom(api).delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                                     namespace)
    _custom(api).create_namespaced_custom_object(GROUP, VERSION, "reborn", PLURAL, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "HardeningProfile",
        "metadata": {"name": "reborn", "namespace": "reborn"}, "spec": spec})
    wait_for(lambda: not any(c["namespace"] == "gone" for c in _managed_children(api)),
             timeout=90, interval=0.5, what="the garbage collector to remove the children")
    # Only the operator gives up its labels: they outlive the profile while it is down.
    assert _pod_security_labels(api, "gone")

    runner.start()

    def released() -> bool:
        space = core.read_namespace("gone").metadata
        return not _pod_security_labels(api, "gone") and \
            HASH_ANNOTATION not in (space.annotations or {}) and \
            not any(m.manager == FIELD_MANAGER for m in space.managed_fields or [])

    wait_for(released, timeout=30, interval=0.5,
             what="the operator to give up its labels on the namespace")
    assert (core.read_namespace("gone").metadata.labels or {}).get("name") == "gone"
    _wait_ready(api, ["reborn"], timeout=30, what="the re-created profile to be Ready")
    # A child the collector removes after the operator adopted it is made again at once;
    # what must hold is the state the two settle in.
    wait_for(lambda: _assert_exactly_what_profiles_want(api, ["reborn"], "re-created") or True,
             timeout=20, interval=0.5, what="the re-created profile's children to settle")
    assert not any(c["namespace"] == "gone" for c in _managed_children(api))
