"""The session cookie on the wire: reading the token from Cookie headers, writing
Set-Cookie, and the caching headers a response that carries a session needs."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from asgi_sessions import tokens
from asgi_sessions.exceptions import InsecureConfiguration

SameSite = Literal["lax", "strict", "none"]

EXPIRED = "Thu, 01 Jan 1970 00:00:00 GMT"

_SHARED_CACHE_HEADERS = (b"cdn-cache-control", b"surrogate-control")
"""Cache headers aimed at CDNs and proxies only (RFC 9213): they would override
``Cache-Control: private`` there, so a response setting a session cookie drops them."""


def _pair_pattern(cookie_name: str) -> re.Pattern[bytes]:
    """A pattern for ``name=token`` in a Cookie header, with a well-formed token.

    Only spaces and tabs (what RFC 6265 allows) may surround the value, and one pair of
    double quotes the value. The pattern starts with the name, so the regex engine
    looks for it as a literal; that it starts a pair is checked apart (``_starts_pair``).
    Matching the raw bytes skips decoding and splitting the header: most requests
    carry the cookie, so this runs on nearly all.
    """
    name = re.escape(cookie_name.encode("latin-1"))
    token = rb"[A-Za-z0-9_-]{%d,%d}" % (tokens.MIN_TOKEN_LENGTH, tokens.MAX_TOKEN_LENGTH)
    return re.compile(name + rb'=[ \t]*("?)(' + token + rb")\1[ \t]*(?=;|\Z)")


def _starts_pair(header: bytes, at: int) -> bool:
    """Whether ``at`` begins a pair of ``header``: only spaces and tabs lie between it
    and the header's start or the ``;`` before it."""
    while at and header[at - 1] in b" \t":
        at -= 1
    return at == 0 or header[at - 1] == 0x3B  # ;


@dataclass(frozen=True, slots=True)
class CookiePolicy:
    """How the session cookie is named and flagged; checked once, at construction."""

    name: str = "session"
    path: str = "/"
    domain: str | None = None
    same_site: SameSite = "lax"
    secure: bool = False
    partitioned: bool = False
    host_prefix: bool = False
    _pair: re.Pattern[bytes] = field(init=False, repr=False, compare=False)
    """Finds this cookie's well-formed values in a raw Cookie header (see token_from)."""

    def __post_init__(self) -> None:
        if self.same_site not in ("lax", "strict", "none"):
            raise ValueError(f"same_site must be 'lax', 'strict' or 'none', not {self.same_site!r}")
        if self.same_site == "none" and not self.secure:
            raise InsecureConfiguration(
                "same_site='none' needs a Secure cookie, which browsers only keep over "
                "HTTPS: pass https_only=True, or use same_site='lax'"
            )
        if self.partitioned and not self.secure:
            raise InsecureConfiguration("partitioned=True needs https_only=True")
        if self.host_prefix and (not self.secure or self.path != "/" or self.domain):
            raise InsecureConfiguration(
                "host_prefix=True (a __Host- cookie) needs https_only=True, path='/' and no domain"
            )
        object.__setattr__(self, "_pair", _pair_pattern(self.cookie_name))

    @property
    def cookie_name(self) -> str:
        """The name on the wire, with the ``__Host-`` prefix when asked for."""
        return f"__Host-{self.name}" if self.host_prefix else self.name

    def token_from(self, headers: Iterable[tuple[bytes, bytes]]) -> str | None:
        """The first well-formed session token in the request's Cookie headers, if any.

        Browsers send the most specific cookie first (RFC 6265 §5.4), so the first
        value wins; values of the wrong length or alphabet are skipped unread. Only
        spaces and tabs around a pair, and one pair of quotes around a value, are
        removed: a value padded with other bytes is malformed, not trimmed to a token.
        """
        for name, value in headers:
            if name != b"cookie":
                continue
            found = self._pair.search(value)
            while found is not None:
                if _starts_pair(value, found.start()):
                    return found[2].decode("ascii")
                found = self._pair.search(value, found.start() + 1)
        return None

    def header(self, token: str | None, max_age: int | None) -> str:
        """A Set-Cookie value: the token for ``max_age`` seconds (None: until the
        browser closes), or with ``token=None`` one that deletes the cookie.

        Attributes are spelled and ordered as Starlette's cookie sessions spell them,
        so tests written against those keep passing.
        """
        parts = [f"{self.cookie_name}={token or 'null'}", f"path={self.path}"]
        if token is None:
            parts += [f"expires={EXPIRED}", "Max-Age=0"]
        elif max_age is not None:
            parts.append(f"Max-Age={max_age}")
        parts += ["httponly", f"samesite={self.same_site}"]
        if self.secure:
            parts.append("secure")
        if self.domain:
            parts.append(f"domain={self.domain}")
        if self.partitioned:
            parts.append("partitioned")
        return "; ".join(parts)


def add_session_headers(headers: list[tuple[bytes, bytes]], set_cookie: str | None) -> None:
    """Make a response that used the session say so: ``Vary: Cookie``, and, when it sets
    the cookie (``set_cookie``), never cacheable by a shared cache.

    The raw header list is edited in place: cheaper than MutableHeaders, same result.
    """
    _vary_on_cookie(headers)
    if set_cookie is None:
        return
    headers.append((b"set-cookie", set_cookie.encode("latin-1")))
    _never_publicly_cached(headers)


def _never_publicly_cached(headers: list[tuple[bytes, bytes]]) -> None:
    """Keep the app's Cache-Control only when it already keeps the response out of shared
    caches (``no-store``, or ``private`` without ``public``); otherwise send ``no-store``.

    A shared cache that stored a response carrying a session cookie would hand that
    token to other visitors.
    """
    directives: set[str] = set()
    drop: set[bytes] = set()
    for name, value in headers:
        if name == b"cache-control":
            drop.add(name)
            for part in value.decode("latin-1").lower().split(","):
                directives.add(part.split("=", 1)[0].strip())
        elif name in _SHARED_CACHE_HEADERS:
            drop.add(name)
    private = "no-store" in directives or ("private" in directives and "public" not in directives)
    keep = private and not directives & {"s-maxage"}
    if keep:
        drop.discard(b"cache-control")
    if drop:  # most responses have neither: then the list stays as it is
        headers[:] = [(n, v) for n, v in headers if n not in drop]
    if not keep:
        headers.append((b"cache-control", b"no-store"))


def _vary_on_cookie(headers: list[tuple[bytes, bytes]]) -> None:
    """Make the response's ``Vary`` name ``Cookie``, as ``MutableHeaders`` would set it:
    the first Vary header gains ``, Cookie`` and any later ones are dropped."""
    found = [index for index, (name, _) in enumerate(headers) if name == b"vary"]
    if not found:
        headers.append((b"vary", b"Cookie"))
        return
    vary = headers[found[0]][1].decode("latin-1")
    if "cookie" in vary.lower() or vary.strip() == "*":
        return
    headers[found[0]] = (b"vary", f"{vary}, Cookie".encode("latin-1") if vary else b"Cookie")
    for index in reversed(found[1:]):
        del headers[index]
