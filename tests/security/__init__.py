"""Adversarial tests: malformed cookies, fuzzing, tokens at rest and in logs, tampering."""

import pytest

pytest.register_assert_rewrite("security.asgi")
