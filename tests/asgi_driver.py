"""Call an ASGI app in-process, without a server: for fake-clock tests."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

Message = MutableMapping[str, Any]


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    messages: list[Message] = field(default_factory=list)


def basic(user: str) -> tuple[bytes, bytes]:
    return (b"authorization", b"Basic " + base64.b64encode(f"{user}:pw".encode()))


def call(
    app: Any,
    path: str = "/",
    *,
    method: str = "GET",
    headers: list[tuple[bytes, bytes]] | None = None,
    client: str = "127.0.0.1",
    scope_type: str = "http",
) -> Reply:
    scope = {
        "type": scope_type,
        "method": method,
        "path": path,
        "headers": headers or [],
        "client": (client, 50000),
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    if scope_type != "http":
        return Reply(0, {}, b"", sent)
    start = sent[0]
    assert start["type"] == "http.response.start"
    names = [name.decode("latin-1") for name, _ in start["headers"]]
    assert len(names) == len(set(names)), f"a header is sent twice: {names}"
    decoded = {name.decode("latin-1"): value.decode("latin-1") for name, value in start["headers"]}
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return Reply(start["status"], decoded, body, sent)


def lifespan(app: Any) -> list[Message]:
    """Run the ASGI lifespan protocol (startup, then shutdown); what the app sent."""
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app({"type": "lifespan"}, receive, send))
    return sent


async def hello(scope: Any, receive: Any, send: Any) -> None:
    """A tiny ASGI app: 200 "hello <path>", with one header of its own."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] != "http":
        await send({"type": "websocket.accept"})
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"x-app", b"yes")],
        }
    )
    await send({"type": "http.response.body", "body": f"hello {scope['path']}".encode()})
