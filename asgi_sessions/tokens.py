"""Session tokens: how they are made, checked and turned into the key kept at rest.

The token travels in the cookie and is never stored. Stores only ever see
``key_for(token)``, a SHA-256 digest, so a leaked database holds no usable session.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable

TOKEN_BYTES = 32
"""Entropy of a generated token: 256 bits."""

MIN_TOKEN_LENGTH = 22
"""Shortest token accepted: 22 base64url characters carry 128 bits."""

MAX_TOKEN_LENGTH = 256
"""Longest token accepted; anything longer is rejected before a store lookup."""

_TOKEN_FORMAT = re.compile(r"[A-Za-z0-9_-]+")

TokenGenerator = Callable[[], str]


def generate_token() -> str:
    """Return a new random token: 256 bits from ``secrets``, base64url without padding."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def is_well_formed(token: str) -> bool:
    """Tell whether ``token`` has a token's length and alphabet (no store lookup)."""
    return (
        MIN_TOKEN_LENGTH <= len(token) <= MAX_TOKEN_LENGTH
        and _TOKEN_FORMAT.fullmatch(token) is not None
    )


def checked(token: str) -> str:
    """Return ``token`` if well formed; raise ValueError for a weak custom generator."""
    if not isinstance(token, str) or not is_well_formed(token):
        raise ValueError(
            f"session token generator returned {token!r}: a token must be "
            f"{MIN_TOKEN_LENGTH}-{MAX_TOKEN_LENGTH} base64url characters "
            "(at least 128 bits); use asgi_sessions.tokens.generate_token"
        )
    return token


def key_for(token: str) -> str:
    """Return the key stored for ``token``: its SHA-256 digest in hex."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()
