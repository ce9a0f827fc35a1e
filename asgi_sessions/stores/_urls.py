"""Store URLs fit to show: the one redaction every message that names a URL goes through."""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

__all__ = ["redact_url"]

HIDDEN = "***"
_SECRET_NAME = re.compile(r"pass|pwd|secret|token|key", re.IGNORECASE)
"""Query parameter names whose values are hidden: password, passwd, sslpassword, pwd,
client_secret, token, access_token, sslkey, api_key, ..."""


def redact_url(url: str) -> str:
    """``url`` with its password and any secret-looking query values replaced by ``***``.

    The password in ``scheme://user:password@host`` is hidden, and so is the value of
    every query parameter whose name contains pass, pwd, secret, token or key. The rest
    is left exactly as written (``sqlite:////abs.db`` keeps its four slashes).
    """
    rest, hash_sign, fragment = url.partition("#")
    base, question_mark, query = rest.partition("?")
    scheme, separator, remainder = base.partition("://")
    if separator and not remainder.startswith("/"):
        # Up to the last "@", so a password holding an unescaped "/" is hidden whole.
        userinfo, at, after = remainder.rpartition("@")
        if at and ":" in userinfo:
            base = f"{scheme}://{userinfo.partition(':')[0]}:{HIDDEN}@{after}"
    if question_mark:
        query = "&".join(_redact_pair(pair) for pair in query.split("&"))
    return f"{base}{question_mark}{query}{hash_sign}{fragment}"


def _redact_pair(pair: str) -> str:
    name, equals, _ = pair.partition("=")
    if equals and _SECRET_NAME.search(unquote_plus(name)):
        return f"{name}={HIDDEN}"
    return pair
