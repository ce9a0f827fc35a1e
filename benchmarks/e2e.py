"""End to end: each variant under uvicorn (one worker) in a subprocess, loaded over
loopback by wrk with 50 connections on ``/read``, holding one session cookie."""

from __future__ import annotations

import dataclasses
import importlib.util
import secrets
import statistics
from typing import Any

from benchmarks import load, serve
from benchmarks.apps import available, build
from benchmarks.settings import Env

E2E = (
    "bare",
    "starlette-cookie",
    "ours-memory",
    "ours-sqlite",
    "ours-postgres",
    "ours-redis",
    "starsessions-redis",
)


async def run(env: Env) -> list[dict[str, Any]]:
    """Each variant on uvicorn without its standard extras, then with them (uvloop,
    httptools) where installed; report the medians of both."""
    rows = []
    for stack in load.STACKS:
        if stack != "asyncio+h11" and not _have("uvloop", "httptools"):
            env.notes.append("uvloop or httptools is missing: no end-to-end rows with them")
            continue
        rows += await _run_on(env, stack)
    return rows


def _have(*modules: str) -> bool:
    return all(importlib.util.find_spec(module) is not None for module in modules)


async def _run_on(env: Env, stack: str) -> list[dict[str, Any]]:
    """Start every server on ``stack``, then run wrk on each in turn, ``reps`` rounds;
    report medians."""
    env = dataclasses.replace(env, run_id=f"{env.run_id}e", notes=env.notes)
    names = [name for name in E2E if available(name, env)]
    reps = max(1, env.size.reps // 2)
    servers: dict[str, load.Server] = {}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    tool = "wrk" if load.have_wrk() else "httpx"
    if tool == "httpx":
        env.notes.append("wrk is not installed: the end-to-end rows used an httpx loop instead")
    try:
        cookies: dict[str, str] = {}
        for name in names:
            servers[name] = load.start_server(name, serve.environment(env), stack)
            # The bare app sets no cookie: it gets a token-shaped one, so requests match.
            cookies[name] = load.session_cookie(servers[name]) or secrets.token_urlsafe(32)
        warmup = env.size.e2e_seconds > 1  # a quick run skips the warm-up round
        for rep in range(0 if warmup else 1, reps + 1):  # round 0 warms up, not kept
            seconds = env.size.e2e_seconds if rep else 1.0
            for name in names:
                url = f"{servers[name].url}/read"
                if tool == "wrk":
                    result = load.wrk(url, cookies[name], seconds)
                else:
                    result = await load.httpx_loop(url, cookies[name], seconds)
                if rep:
                    runs[name].append(result)
    finally:
        for server in servers.values():
            server.stop()
        for name in names:
            await build(name, env).close()  # same namespace as the worker's: drop it
    rows = []
    for name in names:
        row: dict[str, Any] = {"variant": name, "route": "read", "tool": tool, "stack": stack}
        for metric in runs[name][0]:
            row[metric] = statistics.median(run[metric] for run in runs[name])
        row["runs"] = [round(run["rps"], 1) for run in runs[name]]
        rows.append(row)
    return rows
