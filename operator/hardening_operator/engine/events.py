"""Kubernetes Events on profiles: what the operator created, repaired, or could not do."""

from __future__ import annotations

import logging
import socket
from typing import Any

from hardening_operator.engine.status import now
from hardening_operator.kube.client import ApiError, KubeClient
from hardening_operator.kube.resources import EVENTS

logger = logging.getLogger(__name__)

COMPONENT = "hardening-operator"


class EventRecorder:
    def __init__(self, client: KubeClient) -> None:
        self._client = client
        self._host = socket.gethostname()

    async def post(self, obj: dict[str, Any], *, reason: str, message: str,
                   warning: bool = False) -> None:
        """Post one Event about ``obj``; a refusal is logged, never raised."""
        meta = obj["metadata"]
        stamp = now()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", ""),
                "kind": obj.get("kind", ""),
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid", ""),
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": COMPONENT, "host": self._host},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            await self._client.create(EVENTS, event, namespace=meta["namespace"])
        except ApiError as exc:
            logger.warning("Could not post the event %s on %s/%s: %s", reason,
                           meta["namespace"], meta["name"], exc)
