"""The service the 0.7-style config files of these tests run: one REST route, one broker query, one periodic task."""

import threading

from minos.networks import Request, Response, enroute

TICKED = threading.Event()
"""Set by the periodic handler, in its actor's thread; the tests wait on it."""


class CartService:
    @enroute.rest.query("/carts/{cart_id}", method="GET")
    async def get_cart(self, request: Request) -> Response:
        return Response({"id": (await request.url_params())["cart_id"], "items": []})

    @enroute.broker.query("GetCart")
    async def ask_cart(self, request: Request) -> Response:
        return Response({"cart": await request.content()})

    @enroute.periodic.event("* * * * * *")  # every second (six fields: seconds first)
    async def tick(self, request: Request) -> None:
        TICKED.set()
