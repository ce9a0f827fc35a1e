"""A FastAPI shop whose cart is a pydantic model kept in the session.

Run it with ``uvicorn examples.typed_cart:app`` (sessions in ``typed-cart.db``).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import FastAPI
from pydantic import BaseModel

from asgi_sessions import SessionMiddleware, create_store
from asgi_sessions.fastapi import SessionModel
from asgi_sessions.stores.base import SessionStore


class Cart(BaseModel):
    """What the session keeps under "Cart": every field has a default."""

    items: dict[str, int] = {}
    total: Decimal = Decimal("0.00")
    updated_at: datetime | None = None


CartDep = Annotated[Cart, SessionModel()]
PRICES = {"apple": Decimal("0.40"), "pear": Decimal("0.55")}


def create_app(store: SessionStore) -> FastAPI:
    app = FastAPI(title="Typed cart")

    @app.get("/cart")
    async def show(cart: CartDep) -> Cart:
        return cart

    @app.post("/cart/{fruit}")
    async def add(fruit: str, cart: CartDep) -> Cart:
        cart.items[fruit] = cart.items.get(fruit, 0) + 1
        cart.total += PRICES.get(fruit, Decimal("1.00"))
        cart.updated_at = datetime.now(UTC)
        return cart  # written back to the session when the response starts

    app.add_middleware(SessionMiddleware, store=store)
    return app


app = create_app(create_store(os.environ.get("SESSION_STORE", "sqlite:///typed-cart.db")))
