"""An orders service written for minos 0.7, in the call styles its users wrote; it runs here unchanged.

Importable as ``service07`` (with this folder on ``sys.path``, as ``minos-networks run`` puts a config
file's folder there) or by its file path. Its state lives in module globals so tests can look at it.
"""

from __future__ import annotations

import warnings
from datetime import timedelta
from typing import Any

from minos.networks import Request, Response, ResponseException, enroute

ORDERS: dict[str, dict[str, Any]] = {}
"""The orders created, by id."""

EVENTS: list[Any] = []
"""The content of every ``OrderCreated`` event handled."""

SWEEPS: list[str] = []
"""One entry per run of the periodic sweep."""

with warnings.catch_warnings():
    # `url=` is 0.7's older spelling of `path=`: minos.networks still takes it, with a DeprecationWarning.
    warnings.simplefilter("ignore", DeprecationWarning)
    _LIST_ORDERS = enroute.rest.query(url="/orders", method="GET")


class OrderCommandService:
    """Commands, over HTTP and over the broker."""

    @enroute.rest.command(path="/orders", method="POST")
    @enroute.broker.command("CreateOrder")
    async def create_order(self, request: Request) -> Response:
        """Creates an order from ``{"items": [...]}``; the caller's user, if any, is kept on it."""
        content = await request.content()
        order = {
            "id": str(len(ORDERS) + 1),
            "items": content["items"],
            "user": None if request.user is None else str(request.user),
        }
        ORDERS[order["id"]] = order
        return Response(order)

    @create_order.check(max_attempts=2, delay=timedelta(milliseconds=1))
    async def has_items(self, request: Request) -> bool:
        """An order needs at least one item."""
        content = await request.content()
        return bool(content.get("items"))

    @enroute.rest.command(path="/orders/{order_id}", method="DELETE")
    async def delete_order(self, request: Request) -> None:
        """Deletes an order; answers nothing (HTTP 200 with an empty body, as in 0.7)."""
        params = await request.params()
        ORDERS.pop(params["order_id"], None)


class OrderQueryService:
    """Queries, over HTTP and over the broker."""

    @_LIST_ORDERS
    @enroute.broker.query(topic="GetOrders")
    async def get_orders(self, request: Request) -> Response:
        """Every order, by id."""
        return Response(sorted(ORDERS.values(), key=lambda order: int(order["id"])))

    @enroute.rest.query(path="/orders/{order_id}", method="GET")
    @enroute.broker.query("GetOrder")
    async def get_order(self, request: Request) -> Response:
        """One order: its id in the path over HTTP, in ``{"id": ...}`` over the broker."""
        if request.has_params:
            order_id = (await request.params())["order_id"]
        else:
            order_id = (await request.content())["id"]
        if order_id not in ORDERS:
            raise ResponseException(f"order {order_id} does not exist", status=404)
        return Response(ORDERS[order_id])


class OrderEventService:
    """Events: from the broker, and from the clock."""

    @enroute.broker.event("OrderCreated")
    async def order_created(self, request: Request) -> None:
        """Keeps what was created."""
        EVENTS.append(await request.content())

    @enroute.periodic.event("0 0 * * * * *")  # 0.7's seven fields: second minute hour day month weekday year
    async def sweep(self, request: Request) -> None:
        """Runs every hour, on the hour."""
        SWEEPS.append("swept")
