"""The kustomize base in manifests/, installed into the test cluster as a user would install it.

What is proven here, and how:

1. The base applies with server-side validation, and Pod Security admission (restricted,
   enforced on the operator's namespace) admits the operator's pods. The local control
   plane runs no StatefulSet controller, so no pod appears by itself: a server-side dry-run
   creates the pod the StatefulSet would create, through every admission plugin, and a
   weakened copy of it shows that the namespace really refuses what it should.
2. The ServiceAccount has exactly the rights it needs. Each right is asked of the API
   server with a SubjectAccessReview, the question `kubectl auth can-i --as=...` asks,
   spelled out to the group, subresource and object name and with the groups a real token
   of the account carries (impersonation with `--as` alone would carry fewer).
3. Those rights suffice: the real operator, authenticated with a token of that account and
   started with the StatefulSet's arguments (cluster-wide, peering, liveness), reconciles a
   profile without a single refusal; and two of them, with the priorities the StatefulSet
   gives its pods, settle into one active replica and one standby.

A shortcoming of 3: the session's admin operator (the ``operator`` fixture), when another
test has started it, reconciles the same profile at the same time. Both are the same code,
write identical objects under the same field manager, and so agree; the assertions are on
the account's operator's own log, which holds every refusal that it met.
"""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import kubernetes
import pytest
import yaml

from tests.e2e.helpers import is_ready
from tests.support import REPO, Operator, profile, to_yaml, wait_established, wait_for

MANIFESTS = REPO / "manifests"
NAMESPACE = "hardening-operator"
ACCOUNT = "hardening-operator"
USER = f"system:serviceaccount:{NAMESPACE}:{ACCOUNT}"
#: The groups the API server gives every token of the account.
GROUPS = ["system:serviceaccounts", f"system:serviceaccounts:{NAMESPACE}",
          "system:authenticated"]
PEERING = "hardening-operator"
PEERING_CRD = "clusterkopfpeerings.kopf.dev"
#: Seconds a standby is watched after it announced itself, to see that it does not resume:
#: it decides on the peering object's first event, which arrives within milliseconds.
STANDBY_SETTLE = 3.0

#: What marks a refused request in either log, Kopf's or the engine's.
REFUSALS = re.compile(r"\b403\b|[Ff]orbidden|Not enough permissions")


class Installed(NamedTuple):
    """What ``kubectl apply -k`` printed, and the objects the base renders to."""

    output: str
    objects: list[dict[str, Any]]


@pytest.fixture(scope="module")
def installed(cluster: Any) -> Iterator[Installed]:
    """The base, applied as its kustomization says; removed again, all but the CRDs."""
    objects = [doc for doc in yaml.safe_load_all(
        cluster.kubectl("kustomize", str(MANIFESTS)).stdout) if doc]
    # A namespace of an earlier run may still be terminating.
    wait_for(lambda: not _namespace_exists(cluster), timeout=90,
             what=f"namespace {NAMESPACE} of an earlier run to be gone")
    first = cluster.kubectl("apply", "--server-side", "-k", str(MANIFESTS), check=False)
    if first.returncode != 0:
        # On a cluster without the peering CRD, kubectl cannot map the ClusterKopfPeering in
        # the same run that creates the CRD; the kustomization says to run it twice.
        assert "ensure CRDs are installed first" in first.stderr, first.stderr
        wait_established(cluster, PEERING_CRD)
    second = cluster.kubectl("apply", "--server-side", "-k", str(MANIFESTS))
    try:
        yield Installed(second.stdout + second.stderr, objects)
    finally:
        for obj in objects:
            if obj["kind"] == "CustomResourceDefinition" or "namespace" in obj["metadata"]:
                continue  # the CRDs stay for other tests; the namespace takes its content
            cluster.kubectl("delete", _kind(obj), obj["metadata"]["name"],
                            "--ignore-not-found", "--wait=false")
        wait_for(lambda: not _namespace_exists(cluster), timeout=90,
                 what=f"namespace {NAMESPACE} to be deleted")


# --------------------------------------------------------------------------------------------
# 1. The base applies, and its pods are admitted.


def test_the_base_applies_with_server_side_validation(installed: Installed,
                                                      cluster: Any) -> None:
    assert "Warning" not in installed.output, installed.output
    kinds = sorted({obj["kind"] for obj in installed.objects})
    assert kinds == ["ClusterKopfPeering", "ClusterRole", "ClusterRoleBinding",
                     "CustomResourceDefinition", "Namespace", "NetworkPolicy",
                     "PodDisruptionBudget", "Service", "ServiceAccount", "StatefulSet"]
    for obj in installed.objects:
        meta = obj["metadata"]
        where = ["-n", meta["namespace"]] if "namespace" in meta else []
        cluster.kubectl("get", _kind(obj), meta["name"], *where)


def test_the_namespace_enforces_pod_security_restricted(installed: Installed,
                                                        api: Any) -> None:
    found: Any = kubernetes.client.CoreV1Api(api).read_namespace(NAMESPACE)
    assert found.metadata.labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_operators_pods_are_admitted(installed: Installed, cluster: Any) -> None:
    for index in (0, 1):
        pod = _pod_of_statefulset(installed, index)
        created = cluster.kubectl("create", "--dry-run=server", "-o", "json", "-f", "-",
                                  input=json.dumps(pod))
        # The namespace also warns on restricted: a clean admission has no warning.
        assert "Warning" not in created.stderr, created.stderr
        admitted = json.loads(created.stdout)
        assert admitted["spec"]["serviceAccountName"] == ACCOUNT
        # The ServiceAccount admission plugin has added the token the operator needs.
        assert any("projected" in volume for volume in admitted["spec"]["volumes"])


@pytest.mark.parametrize("weaken", [
    pytest.param(lambda c: c["securityContext"].update(allowPrivilegeEscalation=True),
                 id="privilege escalation"),
    pytest.param(lambda c: c["securityContext"].update(capabilities={"add": ["NET_ADMIN"]}),
                 id="an added capability"),
    pytest.param(lambda c: c["securityContext"].update(runAsNonRoot=False, runAsUser=0),
                 id="root"),
])
def test_a_weakened_pod_is_refused(installed: Installed, cluster: Any, weaken: Any) -> None:
    pod = _pod_of_statefulset(installed, 0)
    weaken(pod["spec"]["containers"][0])
    refused = cluster.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod),
                              check=False)
    assert refused.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in refused.stderr, refused.stderr


def test_the_statefulset_gives_each_pod_its_own_peering_priority(installed: Installed) -> None:
    (statefulset,) = [o for o in installed.objects if o["kind"] == "StatefulSet"]
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    assert "--peering=hardening-operator" in container["args"]
    assert "--priority=$(POD_INDEX)" in container["args"]
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"]}
    assert env == {"POD_ID": "metadata.name",
                   "POD_INDEX": "metadata.labels['apps.kubernetes.io/pod-index']"}


# --------------------------------------------------------------------------------------------
# 2. Least privilege.


class Access(NamedTuple):
    verb: str
    resource: str
    group: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""

    def __str__(self) -> str:
        what = ".".join(p for p in (self.resource, self.group) if p)
        what += f"/{self.subresource}" if self.subresource else ""
        what += f" {self.name}" if self.name else ""
        return f"{self.verb} {what}" + (f" in {self.namespace}" if self.namespace else "")


_CHILD_VERBS = ("get", "list", "watch", "create", "patch", "delete")
NEEDED = [
    Access("list", "hardeningprofiles", "hardening.plumbing.ai"),
    Access("watch", "hardeningprofiles", "hardening.plumbing.ai"),
    Access("get", "hardeningprofiles", "hardening.plumbing.ai", namespace="team"),
    Access("patch", "hardeningprofiles", "hardening.plumbing.ai", "status", "team"),
    *[Access(verb, resource, group, namespace=namespace)
      for resource, group, namespace in [("networkpolicies", "networking.k8s.io", "team"),
                                         ("poddisruptionbudgets", "policy", "team"),
                                         ("limitranges", "", "team"),
                                         ("secretstores", "external-secrets.io", "team"),
                                         ("clusternetworkpolicies", "policy.networking.k8s.io",
                                          ""),
                                         ("adminnetworkpolicies", "policy.networking.k8s.io",
                                          "")]
      for verb in _CHILD_VERBS],
    # Cluster-wide lists and watches of the children, as a cluster-wide operator makes them.
    Access("list", "networkpolicies", "networking.k8s.io"),
    Access("watch", "secretstores", "external-secrets.io"),
    *[Access(verb, "namespaces", name="team") for verb in ("get", "patch")],
    *[Access(verb, "namespaces") for verb in ("list", "watch")],
    *[Access(verb, "pods", namespace="team") for verb in ("get", "list", "watch", "patch")],
    Access("create", "events", namespace="team"),
    Access("patch", "events", namespace="team"),
    *[Access(verb, "customresourcedefinitions", "apiextensions.k8s.io")
      for verb in ("get", "list", "watch")],
    *[Access(verb, "clusterkopfpeerings", group)
      for group in ("kopf.dev", "zalando.org") for verb in ("list", "watch")],
    Access("patch", "clusterkopfpeerings", "kopf.dev", name=PEERING),
]
REFUSED = [
    # No Secret, anywhere, in any way.
    *[Access(verb, "secrets", namespace=namespace)
      for verb in ("get", "list", "watch", "create", "patch", "delete")
      for namespace in ("team", NAMESPACE)],
    Access("list", "secrets"),
    # No RBAC: neither writing roles and bindings nor the verbs that side-step their checks.
    *[Access(verb, resource, "rbac.authorization.k8s.io")
      for resource in ("clusterroles", "clusterrolebindings")
      for verb in ("create", "patch", "update", "delete")],
    *[Access(verb, resource, "rbac.authorization.k8s.io", namespace="team")
      for resource in ("roles", "rolebindings") for verb in ("create", "patch")],
    Access("bind", "clusterroles", "rbac.authorization.k8s.io", name="cluster-admin"),
    Access("escalate", "clusterroles", "rbac.authorization.k8s.io", name=ACCOUNT),
    *[Access("impersonate", resource) for resource in ("users", "groups", "serviceaccounts")],
    Access("create", "serviceaccounts", "", "token", NAMESPACE, ACCOUNT),
    # No kind it does not manage.
    *[Access(verb, "deployments", "apps", namespace="team") for verb in ("get", "list")],
    Access("patch", "statefulsets", "apps", namespace=NAMESPACE, name=ACCOUNT),
    *[Access(verb, "configmaps", namespace="team") for verb in ("get", "list", "create")],
    Access("create", "services", namespace="team"),
    Access("list", "nodes"),
    Access("create", "validatingwebhookconfigurations", "admissionregistration.k8s.io"),
    Access("update", "certificatesigningrequests", "certificates.k8s.io", "approval"),
    # Of the kinds it does manage, nothing beyond what it does with them.
    *[Access(verb, "pods", namespace="team") for verb in ("create", "delete", "update")],
    Access("create", "pods", "", "exec", "team", "web"),
    Access("create", "pods", "", "eviction", "team", "web"),
    *[Access(verb, "namespaces", name="team") for verb in ("create", "delete", "update")],
    Access("patch", "hardeningprofiles", "hardening.plumbing.ai", namespace="team"),
    Access("delete", "hardeningprofiles", "hardening.plumbing.ai", namespace="team"),
    Access("update", "networkpolicies", "networking.k8s.io", namespace="team"),
    Access("deletecollection", "networkpolicies", "networking.k8s.io", namespace="team"),
    *[Access(verb, "customresourcedefinitions", "apiextensions.k8s.io")
      for verb in ("create", "patch", "delete")],
    Access("patch", "clusterkopfpeerings", "kopf.dev", name="another-operator"),
    Access("delete", "clusterkopfpeerings", "kopf.dev", name=PEERING),
    Access("create", "events", "events.k8s.io", namespace="team"),
]


@pytest.mark.parametrize("access", NEEDED, ids=str)
def test_the_account_may_do_what_the_operator_needs(installed: Installed, api: Any,
                                                    access: Access) -> None:
    assert _allowed(api, access), f"{USER} may not {access}"


@pytest.mark.parametrize("access", REFUSED, ids=str)
def test_the_account_may_do_nothing_else(installed: Installed, api: Any,
                                         access: Access) -> None:
    assert not _allowed(api, access), f"{USER} may {access}"


def test_the_clusterrole_names_everything_it_grants(installed: Installed) -> None:
    """No wildcard: a wildcard would grant kinds that do not exist yet."""
    (role,) = [o for o in installed.objects if o["kind"] == "ClusterRole"]
    for rule in role["rules"]:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule.get(field, []), rule
        assert "nonResourceURLs" not in rule, rule


# --------------------------------------------------------------------------------------------
# 3. The rights suffice for the real operator.


@pytest.fixture
def account_kubeconfig(installed: Installed, cluster: Any, tmp_path: Path) -> Path:
    """A kubeconfig with a fresh token of the operator's account, and the cluster's CA."""
    token = cluster.kubectl("create", "token", ACCOUNT, "-n", NAMESPACE,
                            "--duration=1h").stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    (entry,) = admin["clusters"]
    path = tmp_path / "account.kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {
            "server": entry["cluster"]["server"],
            "certificate-authority-data": entry["cluster"]["certificate-authority-data"],
        }}],
        "users": [{"name": ACCOUNT, "user": {"token": token}}],
        "contexts": [{"name": ACCOUNT, "context": {"cluster": "local", "user": ACCOUNT}}],
        "current-context": ACCOUNT,
    }))
    path.chmod(0o600)
    return path


def _replica(installed: Installed, kubeconfig: Path, log: Path, index: int) -> Replica:
    """The operator as pod ``index`` of the StatefulSet runs it: its arguments, its env.

    The arguments are the manifest's own, so that a flag the CLI does not know fails here.
    Only the addresses move from all interfaces to free ports on the loopback.
    """
    (statefulset,) = [o for o in installed.objects if o["kind"] == "StatefulSet"]
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    ports = {port["containerPort"]: _free_port() for port in container["ports"]}
    args = []
    for arg in container["args"]:
        arg = arg.replace("$(POD_INDEX)", str(index))
        for inside, outside in ports.items():
            arg = arg.replace(f"0.0.0.0:{inside}", f"127.0.0.1:{outside}")
        args.append(arg)
    assert not any("0.0.0.0" in arg or "$(" in arg for arg in args), args
    operator = Operator(kubeconfig, log, args=args,
                        extra_env={"POD_ID": f"{ACCOUNT}-{index}", "POD_INDEX": str(index)})
    return Replica(operator, liveness=ports[8080], metrics=ports[9090])


class Replica(NamedTuple):
    operator: Operator
    liveness: int
    metrics: int


def test_the_operator_works_with_the_accounts_rights_alone(
        installed: Installed, account_kubeconfig: Path, cluster: Any, api: Any, namespace: str,
        tmp_path: Path) -> None:
    replica, liveness, metrics = _replica(installed, account_kubeconfig,
                                          tmp_path / "replica.log", 1)
    replica.start()
    try:
        cluster.kubectl("apply", "-f", "-", input=to_yaml(profile("posture", namespace, {
            "mode": "Enforce",
            "networkPolicy": {"defaultDeny": True, "allowDNS": True, "rules": [{
                "name": "web",
                "podSelector": {"matchLabels": {"app": "web"}},
                "ingress": [{"ports": [{"port": 8080}]}],
                "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"name": namespace}}}],
                            "ports": [{"port": 5432}]}],
            }]},
            "podSecurity": {"enforce": {"level": "restricted"}},
            "disruptionBudgets": [{"name": "web", "minAvailable": 1,
                                   "selector": {"matchLabels": {"app": "web"}}}],
            "resourceDefaults": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                 "limits": {"cpu": "500m", "memory": "256Mi"}},
        })))
        wait_for(lambda: is_ready(api, namespace, "posture"), timeout=30,
                 what="the profile to be Ready")
        # It is the active peer: its keep-alive is in the peering object.
        peers = _peers(api)
        assert peers.get(f"{ACCOUNT}-1", {}).get("priority") == 1, peers
        for path, port in (("/healthz", liveness), ("/metrics", metrics)):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
                assert reply.status == 200, path
    finally:
        replica.stop()
    refused = _refusals(replica.logs())
    assert not refused, "\n".join(refused)
    # On its way out, it took its keep-alive with it, so that a standby need not wait.
    assert f"{ACCOUNT}-1" not in _peers(api)


def test_two_replicas_settle_into_one_active_and_one_standby(
        installed: Installed, account_kubeconfig: Path, tmp_path: Path, api: Any) -> None:
    standby = _replica(installed, account_kubeconfig, tmp_path / "replica-0.log", 0).operator
    active = _replica(installed, account_kubeconfig, tmp_path / "replica-1.log", 1).operator
    active.start()
    wait_for(lambda: "Resuming operations" in active.logs(), timeout=30,
             what="replica 1 to start working")
    standby.start()
    try:
        # Kopf starts every replica paused and resumes it once the peering object shows no
        # peer of higher or equal priority. The standby sees replica 1 and stays paused.
        wait_for(lambda: f"{ACCOUNT}-0" in _peers(api), timeout=30,
                 what="replica 0 to announce itself")
        time.sleep(STANDBY_SETTLE)
        assert "Resuming operations" not in standby.logs(), standby.logs()
        # A StatefulSet's update takes replica 1 down first: replica 0 takes over at once,
        # because replica 1 removes its keep-alive on the way out.
        active.stop()
        wait_for(lambda: "Resuming operations" in standby.logs(), timeout=10,
                 what="replica 0 to resume once replica 1 has left")
    finally:
        active.stop()
        standby.stop()
    for replica in (active, standby):
        refused = _refusals(replica.logs())
        assert not refused, "\n".join(refused)


# --------------------------------------------------------------------------------------------


def _allowed(api: Any, access: Access) -> bool:
    attributes = {key: value for key, value in access._asdict().items() if value}
    authorization: Any = kubernetes.client.AuthorizationV1Api(api)
    review = authorization.create_subject_access_review({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {"user": USER, "groups": GROUPS, "resourceAttributes": attributes},
    })
    return bool(review.status.allowed)


def _pod_of_statefulset(installed: Installed, index: int) -> dict[str, Any]:
    """The pod that the StatefulSet controller would create as ordinal ``index``."""
    (statefulset,) = [o for o in installed.objects if o["kind"] == "StatefulSet"]
    template = json.loads(json.dumps(statefulset["spec"]["template"]))
    name = f"{statefulset['metadata']['name']}-{index}"
    labels = {**template["metadata"]["labels"],
              "apps.kubernetes.io/pod-index": str(index),
              "statefulset.kubernetes.io/pod-name": name}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels,
                     "annotations": template["metadata"].get("annotations", {})},
        "spec": template["spec"],
    }


def _peers(api: Any) -> dict[str, Any]:
    body: Any = kubernetes.client.CustomObjectsApi(api).get_cluster_custom_object(
        "kopf.dev", "v1", "clusterkopfpeerings", PEERING)
    return dict(body.get("status") or {})


def _namespace_exists(cluster: Any) -> bool:
    found = cluster.kubectl("get", "namespace", NAMESPACE, "--ignore-not-found", "-o", "name")
    return bool(found.stdout.strip())


def _kind(obj: dict[str, Any]) -> str:
    """The kind as kubectl takes it unambiguously: ``statefulset.apps``, ``namespace``."""
    group, _, _ = str(obj["apiVersion"]).rpartition("/")
    return f"{obj['kind'].lower()}.{group}" if group else obj["kind"].lower()


def _refusals(log: str) -> list[str]:
    return [line for line in log.splitlines() if REFUSALS.search(line)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
