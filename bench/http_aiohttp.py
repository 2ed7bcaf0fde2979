"""The runner-up HTTP stack, kept for `make bench` to measure beside the one we ship: the same
OpenAIApi under aiohttp's low-level server, in the server's own event loop.

`python -m bench.http_aiohttp <encoder-serve flags>` is encoder-serve with this listener in place
of uvicorn's (docs/protocols.md has the comparison). Plaintext only.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from aiohttp import web

from zh_rnn_encoder.transport import app
from zh_rnn_encoder.transport.openai import http_server
from zh_rnn_encoder.transport.openai.api import OpenAIApi
from zh_rnn_encoder.transport.openai.convert import Reply


class AiohttpServer:
    """HttpServer's interface (start, stop) over aiohttp.web.Server."""

    def __init__(
        self, api: OpenAIApi, tls_cert: Path | None = None, *_: object, **__: object
    ) -> None:
        if tls_cert:
            raise SystemExit("bench.http_aiohttp measures plaintext only")
        self.api = api
        self.max_connections = 0  # no cap: the runner-up is measured as it comes
        self._server = web.Server(self._handle, access_log=None)
        self._listener: asyncio.AbstractServer | None = None

    async def start(self, listen: str, reuse_port: bool = False) -> int:
        sock = http_server.bind(listen, reuse_port)
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(self._server, sock=sock)
        return sock.getsockname()[1]

    async def stop(self, grace: float) -> None:
        if self._listener is not None:
            self._listener.close()
            await self._server.shutdown(grace)
            await self._listener.wait_closed()

    async def _handle(self, request: web.BaseRequest) -> web.Response:
        api = self.api
        auth = request.headers.get("Authorization")
        refused = api.on_headers(request.method, request.path, auth, request.content_length)
        if refused is not None:
            return _response(refused)
        chunks, size = [], 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size > api.max_body_bytes:
                return _response(api.too_large(size))
            chunks.append(chunk)
        return _response(await api.handle(request.method, request.path, b"".join(chunks)))


def _response(reply: Reply) -> web.Response:
    return web.Response(status=reply.status, body=reply.body, headers=reply.headers)


if __name__ == "__main__":
    http_server.HttpServer = AiohttpServer  # build_server looks it up when it builds the app
    sys.exit(app.main(sys.argv[1:]))
