"""A pure ASGI middleware that refuses request bodies over the configured size."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodySizeLimit"]


class _TooLargeError(Exception):
    pass


class BodySizeLimit:
    """413 ``protocol.body_too_large`` for bodies past ``body_bytes_max``, declared or streamed."""

    def __init__(self, app: ASGIApp, body_bytes_max: int) -> None:
        assert body_bytes_max > 0
        self.app = app
        self.body_bytes_max = body_bytes_max

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.body_bytes_max:
            await self._refuse(send, int(declared))
            return
        received_bytes = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received_bytes
            message = await receive()
            if message["type"] == "http.request":
                received_bytes += len(message.get("body", b""))
                if received_bytes > self.body_bytes_max:
                    raise _TooLargeError
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLargeError:
            if not response_started:
                await self._refuse(send, received_bytes)

    async def _refuse(self, send: Send, size_bytes: int) -> None:
        body: dict[str, Any] = {
            "type": "https://nexapod.org/problems/protocol.body_too_large",
            "title": "protocol: body too large",
            "status": 413,
            "detail": f"the request body has at least {size_bytes} bytes; "
            f"at most {self.body_bytes_max} are accepted",
            "code": "protocol.body_too_large",
            "body_bytes_max": self.body_bytes_max,
        }
        payload = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
