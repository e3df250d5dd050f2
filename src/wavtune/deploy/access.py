"""ASGI middleware in front of the service: a request id on every response and log line, the
API key (``Authorization: Bearer KEY``, compared in constant time; ``/health`` stays open), and
the request counters and latency of :mod:`wavtune.deploy.metrics`."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.responses import JSONResponse

from wavtune.deploy.metrics import ServiceMetrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/health"})
CLIENT_ID = re.compile(rb"^[A-Za-z0-9._-]{1,64}$")  # a client's X-Request-ID we pass on
log = logging.getLogger("wavtune.serve")


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` keeps the service on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def key_matches(header: bytes | None, key: str) -> bool:
    """``Authorization: Bearer KEY`` against the key, in constant time."""
    expected = f"Bearer {key}".encode()
    return header is not None and hmac.compare_digest(header, expected)


class Access:
    """Request ids, the API key and per-request metrics (see the module docstring)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics, api_key: str | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.api_key = api_key or None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"")
        request_id = given.decode() if CLIENT_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        start, status = time.perf_counter(), 500

        async def tagged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [*message.get("headers", []),
                                      (b"x-request-id", request_id.encode())]
            await send(message)

        path = scope.get("path", "")
        try:
            if (self.api_key and path not in OPEN_PATHS
                    and scope.get("method") != "OPTIONS"
                    and not key_matches(headers.get(b"authorization"), self.api_key)):
                await JSONResponse({"detail": "missing or wrong API key: send the header "
                                              "'Authorization: Bearer KEY'"}, status_code=401,
                                   headers={"WWW-Authenticate": "Bearer"})(scope, receive, tagged)
            else:
                await self.app(scope, receive, tagged)
        finally:
            seconds = time.perf_counter() - start
            self.metrics.request(
                path if path in ("/transcribe", "/health", "/metrics") else "other", status, seconds
            )
            log.info("request_id=%s %s %s %d %.1f ms", request_id, scope.get("method"), path,
                     status, 1000 * seconds)
