"""A small asynchronous client for the few API calls the reconcile engine makes.

Kopf watches and lists; it does not apply. The official ``kubernetes`` client applies, but
only synchronously: inside Kopf's event loop every call would need a thread, and its
dynamic client pays for a full discovery of the cluster on start. The engine needs six
verbs (get, list, server-side apply, delete, create, discovery of one group), so they are
written here on aiohttp, which Kopf already brings, with the credentials Kopf logged in
with.

Two behaviours matter for a controller:

- Load shedding is expected, not fatal: a 429 (or a 503/504 from an overloaded server, or
  a dropped connection) is retried with capped exponential backoff, honouring
  ``Retry-After``. Other errors surface at once as ``ApiError``, for the engine to report.
- A 401 re-reads the credentials once (service-account tokens rotate under a running pod).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import ssl
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from hardening_operator.kube.resources import Resource

logger = logging.getLogger(__name__)

#: Retries of one request before its error is given to the caller, and the cap of one pause.
MAX_ATTEMPTS = 8
MAX_BACKOFF = 10.0
# A 500 is retried only with a Retry-After: without one it is mostly the object's own
# fault (a value the server cannot convert), and would fail the same way eight times.
_RETRIED_STATUSES = {429, 502, 503, 504}


class ApiError(Exception):
    """The API server refused a request; ``reason`` and ``message`` are its own words."""

    def __init__(self, status: int, reason: str, message: str, *, method: str, path: str):
        super().__init__(f"{method} {path}: {status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409


@dataclass(frozen=True)
class Credentials:
    """Where the API server is and how to prove who we are; mirrors Kopf's ConnectionInfo."""

    server: str
    ca_path: str | None = None
    ca_data: str | bytes | None = None
    insecure: bool = False
    certificate_path: str | None = None
    certificate_data: str | bytes | None = None
    private_key_path: str | None = None
    private_key_data: str | bytes | None = None
    scheme: str | None = None
    token: str | None = None

    @classmethod
    def from_kopf(cls, info: Any) -> Credentials:
        def path(value: Any) -> str | None:
            return os.fsdecode(value) if value else None

        return cls(
            server=info.server,
            ca_path=path(info.ca_path),
            ca_data=info.ca_data,
            insecure=bool(info.insecure),
            certificate_path=path(info.certificate_path),
            certificate_data=info.certificate_data,
            private_key_path=path(info.private_key_path),
            private_key_data=info.private_key_data,
            scheme=info.scheme,
            token=info.token,
        )

    def ssl_context(self) -> ssl.SSLContext:
        if self.insecure:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            cadata = self.ca_data.decode() if isinstance(self.ca_data, bytes) else self.ca_data
            context = ssl.create_default_context(cafile=self.ca_path, cadata=cadata)
        cert = self.certificate_path or _to_file(self.certificate_data)
        key = self.private_key_path or _to_file(self.private_key_data)
        if cert:
            context.load_cert_chain(cert, key)
        return context

    def headers(self) -> dict[str, str]:
        if self.token:
            return {"Authorization": f"{self.scheme or 'Bearer'} {self.token}"}
        return {}


def _to_file(data: str | bytes | None) -> str | None:
    """ssl loads client certificates only from files; keep in-memory ones in private files."""
    if not data:
        return None
    raw = data.encode() if isinstance(data, str) else data
    handle, name = tempfile.mkstemp(prefix="hardening-operator-", suffix=".pem")
    with os.fdopen(handle, "wb") as f:
        f.write(raw)
    return name


class KubeClient:
    """Asynchronous calls to one API server. Create within a running event loop.

    ``credentials(refresh)`` gives the current credentials; with ``refresh`` true it should
    log in again (it is called so after a 401).
    """

    def __init__(
        self,
        credentials: Callable[[bool], Credentials],
        *,
        user_agent: str = "hardening-operator",
        timeout: float = 30.0,
    ) -> None:
        self._credentials = credentials
        self._user_agent = user_agent
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._current: Credentials | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _connect(self, *, refresh: bool = False) -> tuple[aiohttp.ClientSession, Credentials]:
        creds = self._credentials(refresh)
        if self._session is None or refresh or creds != self._current:
            if self._session is not None:
                # Closing is asynchronous; let the old session finish in the background.
                asyncio.get_running_loop().create_task(self._session.close())
            connector = aiohttp.TCPConnector(ssl=creds.ssl_context(), limit=32)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                headers={"User-Agent": self._user_agent},
            )
            self._current = creds
        return self._session, creds

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Any:
        """One API call, retried while the server sheds load; the decoded JSON answer."""
        data = None if body is None else json.dumps(body)
        refreshed = False
        for attempt in range(1, MAX_ATTEMPTS + 1):
            session, creds = self._connect()
            headers = dict(creds.headers())
            if data is not None:
                headers["Content-Type"] = content_type
            url = creds.server.rstrip("/") + path
            try:
                async with session.request(method, url, params=params, data=data,
                                           headers=headers) as response:
                    text = await response.text()
                    status = response.status
                    retry_after = response.headers.get("Retry-After")
            except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
                if attempt == MAX_ATTEMPTS:
                    raise ApiError(0, "ConnectionFailed", str(exc) or type(exc).__name__,
                                   method=method, path=path) from exc
                await asyncio.sleep(_backoff(attempt, None))
                continue
            if status < 400:
                return json.loads(text) if text else {}
            if status == 401 and not refreshed:
                refreshed = True
                self._connect(refresh=True)
                continue
            retried = status in _RETRIED_STATUSES or (status == 500 and retry_after)
            if retried and attempt < MAX_ATTEMPTS:
                logger.debug("The API server answered %s to %s %s; retrying.", status, method, path)
                await asyncio.sleep(_backoff(attempt, retry_after))
                continue
            raise _error(status, text, method=method, path=path)
        raise AssertionError("unreachable")  # the loop returns or raises

    async def watch(self, path: str, *, params: dict[str, str]) -> AsyncIterator[dict[str, Any]]:
        """The events of one watch request, as they arrive; ends when the server closes it."""
        session, creds = self._connect()
        url = creds.server.rstrip("/") + path
        timeout = aiohttp.ClientTimeout(total=None, sock_read=float(params.get(
            "timeoutSeconds", "300")) + 30)
        async with session.get(url, params={**params, "watch": "true"},
                               headers=creds.headers(), timeout=timeout) as response:
            if response.status >= 400:
                raise _error(response.status, await response.text(), method="WATCH", path=path)
            async for line in response.content:
                if line.strip():
                    yield json.loads(line)

    async def get(self, resource: Resource, *, name: str,
                  namespace: str | None = None) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = await self.request(
                "GET", resource.path(namespace=namespace, name=name))
        except ApiError as exc:
            if exc.not_found:
                return None
            raise
        return result

    async def list(self, resource: Resource, *, namespace: str | None = None,
                   label_selector: str | None = None) -> list[dict[str, Any]]:
        params = {"labelSelector": label_selector} if label_selector else None
        result = await self.request("GET", resource.path(namespace=namespace), params=params)
        items: list[dict[str, Any]] = result.get("items", [])
        return items

    async def apply(
        self,
        resource: Resource,
        body: dict[str, Any],
        *,
        field_manager: str,
        force: bool = True,
        dry_run: bool = False,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """Server-side apply of ``body``; the object as the API server left it (or would)."""
        meta = body["metadata"]
        params = {"fieldManager": field_manager, "fieldValidation": "Strict"}
        if force:
            params["force"] = "true"
        if dry_run:
            params["dryRun"] = "All"
        path = resource.path(namespace=meta.get("namespace"), name=meta["name"],
                             subresource=subresource)
        result: dict[str, Any] = await self.request(
            "PATCH", path, params=params, body=body, content_type="application/apply-patch+yaml")
        return result

    async def create(self, resource: Resource, body: dict[str, Any], *,
                     namespace: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "POST", resource.path(namespace=namespace), body=body)
        return result

    async def delete(self, resource: Resource, *, name: str, namespace: str | None = None,
                     uid: str | None = None) -> bool:
        """Delete one object, only if it still has ``uid``; False when it was already gone."""
        options: dict[str, Any] = {"propagationPolicy": "Background"}
        if uid:
            options["preconditions"] = {"uid": uid}
        try:
            await self.request("DELETE", resource.path(namespace=namespace, name=name),
                               body=options)
        except ApiError as exc:
            if exc.not_found:
                return False
            raise
        return True

    async def served_versions(self, group: str) -> list[str]:
        """The versions the server serves of an API group, preferred first; [] when none."""
        try:
            result = await self.request("GET", f"/apis/{group}")
        except ApiError as exc:
            if exc.not_found:
                return []
            raise
        preferred = (result.get("preferredVersion") or {}).get("version")
        versions = [v["version"] for v in result.get("versions", [])]
        return sorted(versions, key=lambda v: v != preferred)

    async def has_resource(self, group: str, version: str, plural: str) -> bool:
        try:
            result = await self.request("GET", f"/apis/{group}/{version}")
        except ApiError as exc:
            if exc.not_found:
                return False
            raise
        return any(r.get("name") == plural for r in result.get("resources", []))


def _backoff(attempt: int, retry_after: str | None) -> float:
    if retry_after:
        try:
            return min(float(retry_after), MAX_BACKOFF)
        except ValueError:
            pass
    return min(MAX_BACKOFF, 0.2 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


def _error(status: int, text: str, *, method: str, path: str) -> ApiError:
    try:
        payload = json.loads(text)
    except ValueError:
        payload = {}
    return ApiError(
        status,
        payload.get("reason") or "Unknown",
        payload.get("message") or text[:500],
        method=method,
        path=path,
    )
