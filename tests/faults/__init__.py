"""Fault injection on real servers: a slow, held or reset network, restarts, cancellation."""

import pytest

# Shared helpers assert too; let pytest show both sides when they fail.
pytest.register_assert_rewrite(
    "faults.load",
    "faults.proxy",
    "faults.servers",
    "faults.stores",
    "faults.traffic",
    "redis_cluster",
)
