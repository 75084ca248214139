"""Upload size limit enforced while the request body streams in.

The multipart parser would otherwise spool a whole oversized body to disk before any handler
could look at it. This ASGI middleware refuses a declared ``Content-Length`` over the limit at
once, and cuts a body that grows past it (chunked uploads have no length) with ``413`` naming
the limit. Whatever the application was doing with the cut body is discarded.
"""

from __future__ import annotations

import json


class BodyLimit:
    def __init__(self, app, limit: int, methods: tuple[str, ...] = ("POST", "PUT", "PATCH")):
        self.app, self.limit, self.methods = app, limit, methods

    async def _refuse(self, send) -> None:
        body = json.dumps({"detail": f"request body: larger than the limit of {self.limit} "
                                     "bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in self.methods:
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(send)
        received, cut = 0, False

        async def limited_receive():
            nonlocal received, cut
            if cut:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    cut = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if not cut:
                await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not cut:
                raise
        if cut:
            await self._refuse(send)
