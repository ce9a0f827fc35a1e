"""Side-by-side benchmarks of asgi_sessions against a bare app, Starlette's cookie
sessions, starsessions and the raw drivers. Run ``python -m benchmarks --help``.

Nothing here asserts on speed: the runner measures, prints and writes results.
"""
