"""Sending raw header bytes to an ASGI app, which an HTTP client would refuse to encode."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import ASGIApp, Message


@dataclass
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.headers if key == name]


async def request(
    app: ASGIApp, headers: list[tuple[bytes, bytes]], method: str = "GET", path: str = "/read"
) -> Answer:
    """Run one HTTP request through ``app`` with exactly ``headers``; an error is a 500."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    try:
        await app(scope, receive, send)
    except Exception:  # Starlette answers 500, then raises for the server to log
        return Answer(500, [], b"")
    start = sent[0]
    body = b"".join(message.get("body", b"") for message in sent[1:])
    return Answer(start["status"], list(start.get("headers", [])), body)
