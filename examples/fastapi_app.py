"""A FastAPI app with server-side sessions: log in, see who you are, list and revoke
your sessions, log out.

    pip install 'asgi-server-sessions[fastapi,cli]'
    uvicorn examples.fastapi_app:app --reload
"""

from __future__ import annotations

import os
from datetime import datetime

from fastapi import APIRouter, FastAPI, HTTPException
from pydantic import BaseModel

from asgi_sessions import SessionMiddleware, SessionStore, create_store
from asgi_sessions.fastapi import SessionDep, StoreDep, UserIdDep

router = APIRouter()


class Login(BaseModel):
    username: str


class SessionInfo(BaseModel):
    key: str
    created_at: datetime
    expires_at: datetime
    current: bool


@router.post("/login")
async def login(body: Login, session: SessionDep) -> dict[str, str]:
    session.regenerate()  # a new ID at every privilege change
    session.user_id = body.username
    return {"user": body.username}


@router.get("/me")
async def me(user_id: UserIdDep, session: SessionDep) -> dict[str, object]:
    session["visits"] = session.get("visits", 0) + 1
    return {"user": user_id, "visits": session["visits"]}


@router.get("/sessions")
async def my_sessions(
    user_id: UserIdDep, session: SessionDep, store: StoreDep
) -> list[SessionInfo]:
    return [
        SessionInfo(
            key=record.key[:16],
            created_at=record.created_at,
            expires_at=record.expires_at,
            current=record.key == session.key,
        )
        for record in await store.user_sessions(user_id)
    ]


@router.post("/sessions/revoke-others")
async def revoke_others(user_id: UserIdDep, session: SessionDep, store: StoreDep) -> dict[str, int]:
    return {"revoked": await store.destroy_user_sessions(user_id, keep=session.key)}


@router.post("/logout")
async def logout(session: SessionDep) -> dict[str, bool]:
    if session.user_id is None:
        raise HTTPException(status_code=401, detail="Not logged in")
    session.destroy()
    return {"logged_out": True}


def create_app(store: SessionStore) -> FastAPI:
    """The example app over ``store``."""
    app = FastAPI(title="asgi_sessions FastAPI example")
    app.include_router(router)
    app.add_middleware(SessionMiddleware, store=store)
    return app


app = create_app(create_store(os.environ.get("SESSION_STORE", "sqlite:///fastapi-example.db")))
