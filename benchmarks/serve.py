"""The uvicorn entry point for the end-to-end runs: ``benchmarks.serve:create_app``.

The runner names the variant and its namespace in the environment, so the app the
worker builds keeps its rows where the runner will remove them afterwards.
"""

from __future__ import annotations

import os

from starlette.types import ASGIApp

from benchmarks.apps import build
from benchmarks.settings import QUICK, Env


def create_app() -> ASGIApp:
    """Build the variant named by ``BENCH_VARIANT`` (uvicorn ``--factory``)."""
    env = Env(
        size=QUICK,
        tmpdir=os.environ["BENCH_TMPDIR"],
        postgres_dsn=os.environ.get("BENCH_POSTGRES_DSN") or None,
        redis_url=os.environ.get("BENCH_REDIS_URL") or None,
        run_id=os.environ["BENCH_RUN_ID"],
    )
    return build(os.environ["BENCH_VARIANT"], env).app


def environment(env: Env) -> dict[str, str]:
    """What a worker needs to rebuild ``env``'s variants in the same namespaces."""
    return {
        "BENCH_TMPDIR": env.tmpdir,
        "BENCH_POSTGRES_DSN": env.postgres_dsn or "",
        "BENCH_REDIS_URL": env.redis_url or "",
        "BENCH_RUN_ID": env.run_id,
    }
