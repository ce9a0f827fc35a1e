"""An app that sweeps expired sessions in the background, for serving with uvicorn
in tests: ``uvicorn --factory cleanup_app:create_app`` with SESSION_STORE set."""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from asgi_sessions import SessionMiddleware, create_store


async def ping(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"pid {os.getpid()}")


def create_app() -> Starlette:
    app = Starlette(routes=[Route("/ping", ping)])
    app.add_middleware(
        SessionMiddleware,
        store=create_store(os.environ["SESSION_STORE"]),
        cleanup_interval=float(os.environ.get("CLEANUP_INTERVAL", "0.2")),
    )
    return app
