"""A FastAPI app with server-side sessions: log in, see who you are, list and revoke
your sessions, log out.

    pip install 'asgi-server-sessions[fastapi,cli]'
    uvicorn examples.fastapi_app:app --reload
"""

from __future__ import annotations

import os
from datetime import datetime

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from asgi_sessions import SessionMiddleware, create_store
from asgi_sessions.fastapi import SessionDep, StoreDep, UserIdDep

store = create_store(os.environ.get("SESSION_STORE", "sqlite:///fastapi-example.db"))

app = FastAPI(title="asgi_sessions FastAPI example")
app.add_middleware(SessionMiddleware, store=store)


class Login(BaseModel):
    username: str


class SessionInfo(BaseModel):
    key: str
    created_at: datetime
    expires_at: datetime
    current: bool


@app.post("/login")
async def login(body: Login, session: SessionDep) -> dict[str, str]:
    session.regenerate()  # a new ID at every privilege change
    session.user_id = body.username
    return {"user": body.username}


@app.get("/me")
async def me(user_id: UserIdDep, session: SessionDep) -> dict[str, object]:
    session["visits"] = session.get("visits", 0) + 1
    return {"user": user_id, "visits": session["visits"]}


@app.get("/sessions")
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


@app.post("/sessions/revoke-others")
async def revoke_others(user_id: UserIdDep, session: SessionDep, store: StoreDep) -> dict[str, int]:
    return {"revoked": await store.destroy_user_sessions(user_id, keep=session.key)}


@app.post("/logout")
async def logout(session: SessionDep) -> dict[str, bool]:
    if session.user_id is None:
        raise HTTPException(status_code=401, detail="Not logged in")
    session.destroy()
    return {"logged_out": True}
