"""Sealing session data at rest: AES-256-GCM under a key ring, or under the client's token.

Tokens are hashed at rest, but data is not: a copy of the database or a Redis dump
would show what sessions hold (OAuth state, tokens of other services). A sealer
encrypts the serialized data before it reaches the store, with the record's key as
associated data, so a ciphertext copied into another record does not open.

- ``KeyRing({"2026-12": key, "2026-06": old_key})``: the first key seals, every key
  opens; ``asgi-sessions rekey`` re-seals old records under the first.
- ``TokenBound()``: the data key is derived from the client's token (HKDF-SHA256), so
  the server keeps no key at all and a copy of the database together with the server's
  configuration still reads nothing. The user index and device information stay
  readable, so listing and revoking sessions work.

Needs the ``cryptography`` package: ``pip install 'asgi-server-sessions[crypto]'``.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from asgi_sessions.exceptions import CorruptSession

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["KeyRing", "Sealer", "TokenBound", "generate_key"]

KEY_BYTES = 32
"""AES-256: 32-byte keys."""

_NONCE_BYTES = 12
_RING = b"\x01"
"""Format byte of a ring-sealed record: then the key id's length, the id, nonce, ciphertext."""
_BOUND = b"\x02"
"""Format byte of a token-bound record: then nonce, ciphertext."""
_HKDF_LABEL = b"asgi_sessions token-bound session data v1"


def _aesgcm(key: bytes) -> AESGCM:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
        raise ModuleNotFoundError(
            "sealing session data needs the 'cryptography' package: "
            "pip install 'asgi-server-sessions[crypto]'"
        ) from exc
    return AESGCM(key)


def generate_key() -> str:
    """A new random 256-bit key, base64url-encoded, to put in a KeyRing."""
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode("ascii")


class Sealer(Protocol):
    """Encrypts serialized session data for a record, and opens it again."""

    def seal(self, plain: bytes, key: str, token: str) -> bytes:
        """Encrypt ``plain`` for the record keyed ``key`` (the cookie's ``token`` names it)."""
        ...

    def open(self, sealed: bytes, key: str, token: str | None) -> bytes:
        """Decrypt a record's data; CorruptSession if it cannot be opened."""
        ...


def _key_bytes(key_id: str, value: bytes | str) -> bytes:
    raw = value
    if isinstance(value, str):
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        except (binascii.Error, ValueError):
            raw = b""
    if not isinstance(raw, bytes) or len(raw) != KEY_BYTES:
        raise ValueError(
            f"key {key_id!r} must be {KEY_BYTES} bytes, or their base64url text; "
            "make one with asgi_sessions.sealing.generate_key()"
        )
    return raw


class KeyRing:
    """Seal with the first key; open with any: rotate by putting a new key first."""

    def __init__(self, keys: Mapping[str, bytes | str]) -> None:
        if not keys:
            raise ValueError("a KeyRing needs at least one key")
        self._keys: dict[bytes, AESGCM] = {}
        for key_id, value in keys.items():
            encoded = key_id.encode("utf-8")
            if not 0 < len(encoded) < 256:
                raise ValueError(f"key id {key_id!r} must be 1 to 255 bytes of text")
            self._keys[encoded] = _aesgcm(_key_bytes(key_id, value))
        self.current = next(iter(keys))
        """The id of the key that seals."""
        self._current = self.current.encode("utf-8")

    def seal(self, plain: bytes, key: str, token: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        cipher = self._keys[self._current].encrypt(nonce, plain, key.encode())
        return _RING + bytes([len(self._current)]) + self._current + nonce + cipher

    def open(self, sealed: bytes, key: str, token: str | None) -> bytes:
        key_id = self.key_id(sealed)
        start = 2 + len(key_id)
        cipher = self._keys.get(key_id)
        if cipher is None:
            name = key_id.decode(errors="replace")
            raise CorruptSession(f"sealed with key {name!r}, which is not in the ring")
        return _opened(cipher, sealed[start:], key)

    def key_id(self, sealed: bytes) -> bytes:
        """The id of the key ``sealed`` was sealed with; CorruptSession if it is not ring-sealed."""
        if sealed[:1] != _RING or len(sealed) < 2 or len(sealed) < 2 + sealed[1]:
            raise CorruptSession("stored data is not sealed with a key ring")
        return sealed[2 : 2 + sealed[1]]

    def is_current(self, sealed: bytes) -> bool:
        """Whether ``sealed`` is sealed with the key that seals now (rekey skips it)."""
        return self.key_id(sealed) == self._current


class TokenBound:
    """Seal with a key derived from the client's token: the server holds no key.

    Only a request carrying the token can read its session; the command line and admin
    tools see the user index and devices, never the data.
    """

    def seal(self, plain: bytes, key: str, token: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        cipher = _aesgcm(_derived(token)).encrypt(nonce, plain, key.encode())
        return _BOUND + nonce + cipher

    def open(self, sealed: bytes, key: str, token: str | None) -> bytes:
        if sealed[:1] != _BOUND:
            raise CorruptSession("stored data is not sealed to its token")
        if token is None:
            raise CorruptSession("token-bound data opens only with the client's token")
        return _opened(_aesgcm(_derived(token)), sealed[1:], key)


def _derived(token: str) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=_HKDF_LABEL).derive(
        token.encode("ascii")
    )


def _opened(cipher: AESGCM, body: bytes, key: str) -> bytes:
    from cryptography.exceptions import InvalidTag

    nonce, data = body[:_NONCE_BYTES], body[_NONCE_BYTES:]
    if len(nonce) != _NONCE_BYTES:
        raise CorruptSession("sealed data is truncated")
    try:
        plain: bytes = cipher.decrypt(nonce, data, key.encode())
    except InvalidTag:
        raise CorruptSession(
            "sealed data does not open: a wrong key, or data altered or moved from another record"
        ) from None
    return plain
