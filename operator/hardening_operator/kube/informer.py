"""A list-and-watch cache of one resource, for kinds that appear while the operator runs.

Kopf watches every resource the operator has handlers for, and notices CRDs installed at run
time by re-scanning discovery on each CRD event. That re-scan can run before the API server's
discovery serves the new kind, and after the CRD's last event nothing scans again: the kind
then stays unwatched until a restart. The operator finds such kinds by its own discovery,
so it also watches them itself, from the moment discovery serves them.

The informer lists (with a server-side label selector), then watches from the list's
resourceVersion with bookmarks; a 410 Gone or a dropped stream makes it list again. Every
change is passed to ``on_event``, after the cache holds it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from hardening_operator.kube.client import ApiError, KubeClient
from hardening_operator.kube.resources import Resource

logger = logging.getLogger(__name__)

#: Seconds a watch request lasts before the server ends it and a new one starts.
WATCH_SECONDS = 300
#: Pause after a failed list or watch, in seconds.
RETRY_PAUSE = 1.0


class Informer:
    def __init__(self, client: KubeClient, resource: Resource, *, label_selector: str,
                 key: Callable[[dict[str, Any]], str | None],
                 on_event: Callable[[dict[str, Any]], None]) -> None:
        self.resource = resource
        self._client = client
        self._selector = label_selector
        self._key = key
        self._on_event = on_event
        self._objects: dict[str, dict[str, Any]] = {}  # by uid
        self._task: asyncio.Task[None] | None = None
        self.synced = asyncio.Event()

    def objects(self, key: str) -> list[dict[str, Any]]:
        return [o for o in self._objects.values() if self._key(o) == key]

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"informer-{self.resource.plural}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        path = self.resource.path()
        while True:
            try:
                listed = await self._client.request(
                    "GET", path, params={"labelSelector": self._selector})
                fresh = {o["metadata"]["uid"]: o for o in listed.get("items", [])}
                changed = [o for uid, o in fresh.items() if self._objects.get(uid) != o]
                gone = [o for uid, o in self._objects.items() if uid not in fresh]
                self._objects = fresh
                self.synced.set()
                for obj in changed + gone:
                    self._on_event(obj)
                version = listed.get("metadata", {}).get("resourceVersion", "")
                await self._watch(path, version)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a dropped stream or a refused request: list again
                logger.debug("Watching %s failed; listing again: %s", self.resource.plural, exc)
                await asyncio.sleep(RETRY_PAUSE)

    async def _watch(self, path: str, version: str) -> None:
        while True:
            params = {"labelSelector": self._selector, "resourceVersion": version,
                      "allowWatchBookmarks": "true", "timeoutSeconds": str(WATCH_SECONDS)}
            async for event in self._client.watch(path, params=params):
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        return  # too old: list again
                    raise ApiError(int(obj.get("code", 0)), obj.get("reason", ""),
                                   obj.get("message", ""), method="WATCH", path=path)
                version = obj.get("metadata", {}).get("resourceVersion", version)
                if kind == "BOOKMARK":
                    continue
                uid = obj["metadata"]["uid"]
                if kind == "DELETED":
                    self._objects.pop(uid, None)
                else:
                    self._objects[uid] = obj
                self._on_event(obj)
