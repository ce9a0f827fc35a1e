"""Devices: what a session records of the client that holds it, and a user's view of them.

With ``SessionMiddleware(track_devices=True)`` a session's record keeps the client's
User-Agent (cleaned and truncated), its address (whole, truncated to a network, or
left out) and when it was last seen, in fields of their own beside the data. A user
can then list their live sessions and end any of them, as "your devices" pages do.

A device is named by an id derived from its record's key: safe to show and to send
back in a form, it opens nothing (the key is already a digest of the token, and the
id a digest of the key), and it is only ever looked up among the current user's own
sessions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from asgi_sessions.stores.base import SessionRecord, SessionStore

__all__ = [
    "MAX_USER_AGENT_LENGTH",
    "AddressMode",
    "Client",
    "Device",
    "DeviceTracking",
    "client_address",
    "device_id",
    "list_devices",
    "revoke_device",
    "user_agent",
]

MAX_USER_AGENT_LENGTH = 256
"""Characters of a User-Agent kept; real ones rarely pass 200."""

AddressMode = Literal["full", "truncated", "none"]
"""How much of the client's address is kept: all of it, its network (IPv4 /24, IPv6
/48), or nothing."""

_REVOKE_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Client:
    """What one request tells of its client, as a record keeps it."""

    user_agent: str | None
    ip: str | None

    def describe(self) -> str:
        """``user agent from address``, as an event or a log line shows the client."""
        agent = self.user_agent or "an unknown client"
        return agent if self.ip is None else f"{agent} from {self.ip}"

    def stamp(self, record: SessionRecord, now: datetime) -> SessionRecord:
        """``record`` as written by this client at ``now``."""
        return dataclasses.replace(record, user_agent=self.user_agent, ip=self.ip, last_seen_at=now)


@dataclass(frozen=True, slots=True)
class DeviceTracking:
    """What the middleware records of each client; ``enabled=False`` records nothing."""

    enabled: bool = False
    address: AddressMode = "full"

    def client(self, scope: Mapping[str, Any]) -> Client | None:
        """The client of an ASGI ``scope`` as kept; None when devices are not tracked."""
        if not self.enabled:
            return None
        return Client(
            user_agent(scope["headers"]), client_address(scope.get("client"), self.address)
        )

    def __post_init__(self) -> None:
        if self.address not in ("full", "truncated", "none"):
            raise ValueError(
                f"device_address={self.address!r}: use 'full', 'truncated' (IPv4 /24,"
                " IPv6 /48) or 'none'"
            )


@dataclass(frozen=True, slots=True)
class Device:
    """One live session of a user, as a "your devices" page shows it."""

    id: str
    """Names the session to ``revoke_device``; never the token nor the stored key."""
    current: bool
    """Whether it is the session of the request that asked."""
    user_agent: str | None
    ip: str | None
    created_at: datetime
    last_seen_at: datetime | None
    """When it last made a write or a slide; None if it was created untracked."""


def device_id(key: str) -> str:
    """The id shown for the session stored under ``key``: 24 hex digits of a digest."""
    return hashlib.sha256(f"asgi_sessions device {key}".encode()).hexdigest()[:24]


def user_agent(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The request's User-Agent as kept: decoded as HTTP headers are (Latin-1), each
    control character replaced by a space, cut to MAX_USER_AGENT_LENGTH."""
    for name, value in headers:
        if name.lower() == b"user-agent":
            text = value.decode("latin-1")[:MAX_USER_AGENT_LENGTH]
            cleaned = "".join(c if c.isprintable() else " " for c in text).strip()
            return cleaned or None
    return None


def client_address(client: tuple[str, int] | None, mode: AddressMode) -> str | None:
    """The client's address as ``mode`` keeps it; None without one (or with ``none``).

    A value that is not an IP address (a unix socket's path, a test client's name) is
    kept whole only in ``full`` mode, cut to fit a record.
    """
    if client is None or mode == "none":
        return None
    host = client[0]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:64] if mode == "full" and host.isprintable() else None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # an IPv4 client on a dual-stack socket
    if mode == "full":
        return str(address)
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


def _device(record: SessionRecord, current_key: str | None) -> Device:
    return Device(
        id=device_id(record.key),
        current=record.key == current_key,
        user_agent=record.user_agent,
        ip=record.ip,
        created_at=record.created_at,
        last_seen_at=record.last_seen_at,
    )


async def list_devices(store: SessionStore, user_id: str, current_key: str | None) -> list[Device]:
    """The user's live sessions, oldest first, as devices."""
    return [_device(record, current_key) for record in await store.user_sessions(user_id)]


async def revoke_device(store: SessionStore, user_id: str, id: str) -> str | None:
    """End the user's session named ``id`` and return its key; None, ending nothing, if
    none of theirs is.

    Each attempt ends the record only at the version just listed, and only while it is
    still the user's: a session that changes hands meanwhile is never ended for
    someone else, and one that merely changed is looked up again.
    """
    for _ in range(_REVOKE_ATTEMPTS):
        mine = [r for r in await store.user_sessions(user_id) if device_id(r.key) == id]
        if not mine:
            return None
        if await store.destroy(mine[0].key, expected_version=mine[0].version):
            return mine[0].key
    return None
