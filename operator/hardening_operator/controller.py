"""The operator's wiring into Kopf: watches feed caches and a work queue; the engine acts.

Kopf does what it is good at: it logs in, lists and watches (with reconnects, 410 handling
and server-side label selectors), pauses for peers, and serves the liveness probe. Kinds of
other projects' CRDs, which may be installed while the operator runs, are watched by the
operator's own informers instead (``kube/informer.py`` says why). Its indexes are the caches: Kopf holds every handler back
until each indexed resource has been listed once, so the first reconcile of a profile
already sees every object the operator owns and makes no request to learn about them.

Handlers do no work themselves; they only queue the affected profile. They are coroutines
so that they run in the event loop, beside the queue, rather than in Kopf's thread pool. The reconcile engine
(``hardening_operator.engine``) takes profiles from the queue one at a time each, and is the
only place that writes. No handler here asks Kopf to keep state on the objects, so the
operator adds no finalizers and no annotations to profiles.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import kopf

from hardening_operator.api.v1alpha1 import QUARANTINE_LABEL_KEY
from hardening_operator.builders.common import MANAGED_SELECTOR, PROFILE_LABEL
from hardening_operator.builders.quarantine import NAMESPACE_LABEL
from hardening_operator.engine.events import EventRecorder
from hardening_operator.engine.kinds import DISCOVERED
from hardening_operator.engine.queue import WorkQueue
from hardening_operator.engine import drift
from hardening_operator.engine.reconciler import (
    FIELD_MANAGER,
    NamespaceKey,
    ProfileKey,
    Reconciler,
)
from hardening_operator.kube.client import Credentials, KubeClient
from hardening_operator.kube.informer import Informer
from hardening_operator.kube.resources import (
    HARDENING_PROFILES,
    LIMIT_RANGES,
    NAMESPACES,
    NETWORK_POLICIES,
    POD_DISRUPTION_BUDGETS,
    PODS,
    Resource,
)

logger = logging.getLogger(__name__)

#: Seconds between looks at the discovery API while a wanted CRD is still absent.
DISCOVERY_INTERVAL = 5.0
#: Reconcile workers: profiles reconciled at the same time.
WORKERS = 4

_WATCHED_CHILDREN: tuple[Resource, ...] = (NETWORK_POLICIES, POD_DISRUPTION_BUDGETS,
                                           LIMIT_RANGES)


class _CredentialsHolder:
    """The credentials of Kopf's latest login, shared with the engine's client."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: Credentials | None = None
        self._login_kwargs: dict[str, Any] = {}
        self.ready = threading.Event()

    def login(self, **kwargs: Any) -> Any:
        info = kopf.login_via_client(**kwargs)
        if info is None:
            raise kopf.LoginError("No credentials: neither in-cluster nor a kubeconfig.")
        with self._lock:
            self._current = Credentials.from_kopf(info)
            self._login_kwargs = kwargs
        self.ready.set()
        return info

    def __call__(self, refresh: bool = False) -> Credentials:
        if refresh and self._login_kwargs:
            self.login(**self._login_kwargs)
        with self._lock:
            if self._current is None:
                raise RuntimeError("The operator has not logged in yet.")
            return self._current


CREDENTIALS = _CredentialsHolder()


class IndexStore:
    """The engine's view of Kopf's indexes: profiles and owned objects by namespace."""

    def __init__(self) -> None:
        self.indexes: dict[str, kopf.Index[Any, Any]] = {}
        #: Kinds of CRDs that may come and go: watched by the operator's own informers.
        self.informers: dict[str, Informer] = {}

    def profiles(self, namespace: str) -> list[dict[str, Any]]:
        return self._values("profiles_by_namespace", namespace)

    def objects(self, kind: str, namespace: str) -> list[dict[str, Any]]:
        if kind in self.informers:
            return self.informers[kind].objects(namespace)
        return self._values(_index_name(kind), namespace)

    def namespace(self, name: str) -> dict[str, Any] | None:
        found = self._values("namespaces_by_name", name)
        return found[0] if found else None

    def _values(self, index: str, key: str) -> list[dict[str, Any]]:
        found = self.indexes.get(index)
        if found is None:
            return []
        store = found.get(key)
        return list(store) if store is not None else []


class Runtime:
    """Everything the operator holds while it runs; lives in Kopf's memo."""

    def __init__(self) -> None:
        self.store = IndexStore()
        self.client: KubeClient | None = None
        self.queue: WorkQueue | None = None
        self.reconciler: Reconciler | None = None
        self.served: dict[str, Resource | None] = {kind: None for kind in DISCOVERED}
        self._discovery: asyncio.Task[None] | None = None

    async def start(self, indexes: dict[str, Any]) -> None:
        self.store.indexes = {k: v for k, v in indexes.items() if isinstance(v, kopf.Index)}
        self.client = KubeClient(CREDENTIALS)
        self.reconciler = Reconciler(self.client, self.store, EventRecorder(self.client),
                                     served=self.served)
        self.queue = WorkQueue(self.reconciler, workers=WORKERS)
        # Kopf logs in after the startup activities; the workers wait for that and for a
        # first discovery, while watch events already fill the queue.
        self._discovery = asyncio.create_task(self._discover_forever(), name="discovery")

    async def stop(self) -> None:
        if self._discovery is not None:
            self._discovery.cancel()
        for informer in self.store.informers.values():
            await informer.stop()
        if self.queue is not None:
            await self.queue.stop()
        if self.client is not None:
            await self.client.close()

    def enqueue(self, namespace: str | None, name: str | None) -> None:
        if self.queue is not None and namespace and name:
            self.queue.add(ProfileKey(namespace, name))

    def enqueue_namespace(self, namespace: str | None) -> None:
        if not namespace:
            return
        for profile in self.store.profiles(namespace):
            self.enqueue(namespace, profile["metadata"]["name"])

    def enqueue_all(self) -> None:
        index = self.store.indexes.get("profiles_by_namespace")
        for namespace in list(index.keys()) if index is not None else []:
            self.enqueue_namespace(namespace)

    def enqueue_owner(self, body: dict[str, Any]) -> bool:
        """Queue the profile that owns an object; False if no profile does."""
        meta = body.get("metadata", {})
        for ref in meta.get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") == HARDENING_PROFILES.kind:
                self.enqueue(meta.get("namespace"), ref.get("name"))
                return True
        labels = meta.get("labels") or {}
        if labels.get(NAMESPACE_LABEL) and labels.get(PROFILE_LABEL):
            self.enqueue(labels[NAMESPACE_LABEL], labels[PROFILE_LABEL])
            return True
        return False

    async def discover(self) -> bool:
        """Look up the served version of each discovered kind; True if any appeared."""
        assert self.client is not None
        appeared = False
        for kind, (resource, spoken) in DISCOVERED.items():
            versions = await self.client.served_versions(resource.group)
            for version in spoken:
                if version in versions and await self.client.has_resource(
                        resource.group, version, resource.plural):
                    found: Resource | None = resource.with_version(version)
                    break
            else:
                found = None
            if found != self.served.get(kind):
                logger.info("The API server %s %s.", "serves" if found else "no longer serves",
                            found.api_version + " " + kind if found else kind)
                appeared = appeared or found is not None
                await self._follow(kind, found)
            self.served[kind] = found
        return appeared

    async def _follow(self, kind: str, resource: Resource | None) -> None:
        """Watch a discovered kind from the moment it is served, and stop when it goes."""
        old = self.store.informers.pop(kind, None)
        if old is not None:
            await old.stop()
        if resource is None:
            return
        assert self.client is not None
        informer = Informer(self.client, resource, label_selector=MANAGED_SELECTOR,
                            key=_namespace_of, on_event=self._child_changed)
        informer.start()
        try:
            await asyncio.wait_for(informer.synced.wait(), timeout=30)
        except asyncio.TimeoutError:
            logger.warning("The first listing of %s takes long; going on.", resource.plural)
        self.store.informers[kind] = informer

    def _child_changed(self, body: dict[str, Any]) -> None:
        self.enqueue_owner(body)

    async def _discover_forever(self) -> None:
        while not CREDENTIALS.ready.is_set():
            await asyncio.sleep(0.1)
        while True:
            try:
                await self.discover()
                break
            except Exception as exc:
                logger.warning("Discovery failed; trying again: %s", exc)
                await asyncio.sleep(1)
        assert self.queue is not None
        self.queue.start()
        while True:
            await asyncio.sleep(DISCOVERY_INTERVAL)
            if all(self.served.values()):
                continue
            try:
                if await self.discover():
                    self.enqueue_all()
            except Exception as exc:  # a failed look-up is tried again next round
                logger.warning("Discovery failed: %s", exc)


def _index_name(kind: str) -> str:
    return f"{kind.lower()}s_by_namespace"


def _memo_runtime(memo: Any) -> Runtime:
    runtime = getattr(memo, "runtime", None)
    if runtime is None:
        runtime = Runtime()
        memo.runtime = runtime
    return runtime


# --------------------------------------------------------------------------------------------
# Activities.


@kopf.on.login()
def login(**kwargs: Any) -> Any:
    return CREDENTIALS.login(**kwargs)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: Any, **kwargs: Any) -> None:
    # Only the operator's own objects stream through the child watches. NetworkPolicies are
    # the exception: quarantine has to see everybody's, to find those that bypass it.
    for resource in _WATCHED_CHILDREN:
        if resource is not NETWORK_POLICIES:
            settings.watching.label_selectors[resource.group, resource.plural] = MANAGED_SELECTOR
    settings.watching.label_selectors[PODS.group, PODS.plural] = QUARANTINE_LABEL_KEY
    # A silently dead connection is noticed and re-opened within minutes.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.posting.level = logging.WARNING
    lifetime = getattr(memo, "peering_lifetime", None)
    if lifetime:
        settings.peering.lifetime = lifetime
    await _memo_runtime(memo).start(kwargs)


@kopf.on.cleanup()
async def cleanup(memo: Any, **_: Any) -> None:
    await _memo_runtime(memo).stop()


# --------------------------------------------------------------------------------------------
# Profiles.


@kopf.index(HARDENING_PROFILES.group, HARDENING_PROFILES.version, HARDENING_PROFILES.plural,
            id="profiles_by_namespace")
async def index_profile(namespace: str, body: kopf.Body, **_: Any) -> dict[str, Any]:
    return {namespace: _plain(body)}


@kopf.on.event(HARDENING_PROFILES.group, HARDENING_PROFILES.version, HARDENING_PROFILES.plural)
async def profile_event(namespace: str, name: str, memo: Any, **_: Any) -> None:
    runtime = _memo_runtime(memo)
    runtime.enqueue(namespace, name)
    # Another profile of the namespace may govern, or stop governing, because of this one.
    runtime.enqueue_namespace(namespace)


# --------------------------------------------------------------------------------------------
# Namespaces: the operator owns some of their labels.


@kopf.index(NAMESPACES.version, NAMESPACES.plural, id="namespaces_by_name")
async def index_namespace(name: str, body: kopf.Body, **_: Any) -> dict[str, Any]:
    return {name: _plain(body)}


@kopf.on.event(NAMESPACES.version, NAMESPACES.plural)
async def namespace_event(name: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    runtime = _memo_runtime(memo)
    if runtime.store.profiles(name):
        runtime.enqueue_namespace(name)
    elif runtime.queue is not None and drift.managed_fields(_plain(body), FIELD_MANAGER):
        # Labels of ours on a namespace no profile governs: left by a profile deleted while
        # the operator was down. The initial listing brings every such namespace here.
        runtime.queue.add(NamespaceKey(name))


# --------------------------------------------------------------------------------------------
# Owned objects: indexed by namespace, and each change queues the owning profile.


def _register_child(resource: Resource) -> None:
    group, plural = resource.group, resource.plural
    selector = (group, resource.version, plural)

    async def index_child(namespace: str | None, body: kopf.Body,
                          **_: Any) -> dict[str, Any]:
        key = _namespace_of(_plain(body))
        return {key: _plain(body)} if key else {}

    async def child_event(body: kopf.Body, namespace: str | None, memo: Any,
                          **_: Any) -> None:
        runtime = _memo_runtime(memo)
        plain = _plain(body)
        if not runtime.enqueue_owner(plain) and namespace and \
                runtime.store.objects(PODS.kind, namespace):
            # Somebody else's policy in a namespace with quarantined pods: it may bypass.
            runtime.enqueue_namespace(namespace)

    kopf.index(*selector, id=_index_name(resource.kind))(index_child)
    kopf.on.event(*selector, id=f"{plural}_event")(child_event)


for _resource in _WATCHED_CHILDREN:
    _register_child(_resource)


# --------------------------------------------------------------------------------------------
# Pods: only those carrying the quarantine label stream here (a server-side selector), so
# the operator's memory does not grow with the pods of the cluster.


@kopf.index(PODS.version, PODS.plural, id=_index_name(PODS.kind))
async def index_pod(namespace: str, body: kopf.Body, **_: Any) -> dict[str, Any]:
    return {namespace: _slim_pod(body)}


@kopf.on.event(PODS.version, PODS.plural)
async def pod_event(namespace: str, memo: Any, **_: Any) -> None:
    runtime = _memo_runtime(memo)
    if runtime.store.profiles(namespace):
        runtime.enqueue_namespace(namespace)
    elif runtime.queue is not None:
        runtime.queue.add(NamespaceKey(namespace))


def _slim_pod(body: kopf.Body) -> dict[str, Any]:
    """What quarantine needs of a pod: identity, labels and who set them; not its spec."""
    meta = body.get("metadata", {})
    return {"metadata": {key: meta[key] for key in
                         ("name", "namespace", "uid", "labels", "managedFields",
                          "deletionTimestamp") if key in meta}}


def _namespace_of(body: dict[str, Any]) -> str | None:
    """The namespace an object belongs to; cluster-scoped children name it in a label."""
    meta = body.get("metadata", {})
    return meta.get("namespace") or (meta.get("labels") or {}).get(NAMESPACE_LABEL)


def _plain(body: kopf.Body) -> dict[str, Any]:
    return {key: value for key, value in body.items()}
