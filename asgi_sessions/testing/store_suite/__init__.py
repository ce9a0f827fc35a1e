"""The store conformance suite: every sentence of the store contract, as tests.

Subclass ``StoreConformance`` in a test module and override its ``make_store``
fixture; pytest then runs every test of the suite against your store::

    class TestMyStore(StoreConformance):
        @pytest.fixture
        def make_store(self, tmp_path: Path) -> Callable[[Clock], SessionStore]:
            return lambda clock: MyStore(tmp_path / "sessions.db", clock=clock)

Optionally override ``make_unavailable_store`` with a factory of stores aimed at a
server that is down (a closed port, or ``unresponsive_address`` with short timeouts)
to check that every call raises StoreUnavailable.

The suite is made of one part per section of the contract (``StoreReadAndCreate``,
``StoreUpdate`` and so on, below); ``StoreConformance`` runs them all, and each can
also run alone on the same fixtures. It asks only the public contract of
``asgi_sessions.stores.base``. Time moves through a ``FrozenClock``, never by
sleeping. A behaviour a store may lack is a capability it declares (``persistent``);
tests that need it skip and say why. Tests run on asyncio, the event loop the
stores are written for, through anyio's pytest plugin.
"""

from __future__ import annotations

from asgi_sessions.testing.store_suite.cleanup import StoreCleanup
from asgi_sessions.testing.store_suite.destroying import StoreDestroy
from asgi_sessions.testing.store_suite.devices import StoreDevices
from asgi_sessions.testing.store_suite.extending import StoreExtendLifetime
from asgi_sessions.testing.store_suite.fixtures import StoreFixtures
from asgi_sessions.testing.store_suite.importing import StoreImport
from asgi_sessions.testing.store_suite.lifecycle import StoreLifecycle
from asgi_sessions.testing.store_suite.limits import StoreUserLimit
from asgi_sessions.testing.store_suite.listing import StoreListing
from asgi_sessions.testing.store_suite.reading import StoreReadAndCreate
from asgi_sessions.testing.store_suite.revival import StoreNoRevival
from asgi_sessions.testing.store_suite.support import (
    HOUR,
    NOT_PERSISTENT,
    START,
    TINY,
    collect,
    concurrently,
    contract_call,
    create_many,
    create_or_exists,
    new_key,
    new_record,
    require_persistent,
    sharing_one_namespace,
)
from asgi_sessions.testing.store_suite.unreachable import StoreUnreachableServer
from asgi_sessions.testing.store_suite.updating import StoreUpdate
from asgi_sessions.testing.store_suite.users import StoreUserSessions
from asgi_sessions.testing.store_suite.values import StoreHostileValues

__all__ = [
    "HOUR",
    "NOT_PERSISTENT",
    "START",
    "TINY",
    "StoreCleanup",
    "StoreConformance",
    "StoreDestroy",
    "StoreDevices",
    "StoreExtendLifetime",
    "StoreFixtures",
    "StoreHostileValues",
    "StoreImport",
    "StoreLifecycle",
    "StoreListing",
    "StoreNoRevival",
    "StoreReadAndCreate",
    "StoreUnreachableServer",
    "StoreUpdate",
    "StoreUserLimit",
    "StoreUserSessions",
    "collect",
    "concurrently",
    "contract_call",
    "create_many",
    "create_or_exists",
    "new_key",
    "new_record",
    "require_persistent",
    "sharing_one_namespace",
]


class StoreConformance(
    StoreReadAndCreate,
    StoreUpdate,
    StoreDestroy,
    StoreExtendLifetime,
    StoreNoRevival,
    StoreCleanup,
    StoreDevices,
    StoreListing,
    StoreUserSessions,
    StoreUserLimit,
    StoreImport,
    StoreHostileValues,
    StoreLifecycle,
    StoreUnreachableServer,
):
    """Subclass in a test module and override ``make_store``; every test of the suite then
    runs on it."""
