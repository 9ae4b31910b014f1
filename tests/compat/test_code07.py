"""The 0.7 service's own unit tests, written the 0.7 way (unittest classes calling handlers with InMemoryRequest),
and the same service behind the broker."""

# ruff: noqa: PT009, PT027  (unittest's assertions on purpose: these tests are written as 0.7 projects wrote theirs)

import unittest
from uuid import uuid4

import pytest

from minos.networks import (
    REQUEST_USER_CONTEXT_VAR,
    InMemoryRequest,
    NotHasContentException,
    Response,
    ResponseException,
)
from minos.networks.testing import ServiceHarness


@pytest.fixture(autouse=True)
def _service(request, service07):
    if request.cls is not None:
        request.cls.service07 = service07


class TestOrderCommandService(unittest.IsolatedAsyncioTestCase):
    service07 = None  # set by the fixture above, as 0.7 tests imported their service at the top

    async def test_create_order(self):
        service = self.service07.OrderCommandService()
        response = await service.create_order(InMemoryRequest({"items": ["book"]}))
        self.assertIsInstance(response, Response)
        self.assertEqual({"id": "1", "items": ["book"], "user": None}, await response.content())

    async def test_create_order_with_user_from_context(self):
        user = uuid4()
        REQUEST_USER_CONTEXT_VAR.set(user)  # IsolatedAsyncioTestCase runs each test in a context of its own
        response = await self.service07.OrderCommandService().create_order(
            InMemoryRequest({"items": ["pen"]})
        )
        self.assertEqual(str(user), (await response.content())["user"])

    async def test_create_order_without_content_raises(self):
        with self.assertRaises(NotHasContentException):
            await self.service07.OrderCommandService().create_order(InMemoryRequest())

    async def test_has_items(self):
        service = self.service07.OrderCommandService()
        self.assertTrue(await service.has_items(InMemoryRequest({"items": ["book"]})))
        self.assertFalse(await service.has_items(InMemoryRequest({"items": []})))

    async def test_delete_order(self):
        self.service07.ORDERS["1"] = {"id": "1"}
        observed = await self.service07.OrderCommandService().delete_order(
            InMemoryRequest(params={"order_id": "1"})
        )
        self.assertIsNone(observed)
        self.assertEqual({}, self.service07.ORDERS)


class TestOrderQueryService(unittest.IsolatedAsyncioTestCase):
    service07 = None

    async def test_get_order_by_params_and_by_content(self):
        self.service07.ORDERS["1"] = {"id": "1", "items": ["book"], "user": None}
        service = self.service07.OrderQueryService()
        by_params = await service.get_order(InMemoryRequest(params={"order_id": "1"}))
        by_content = await service.get_order(InMemoryRequest({"id": "1"}))
        self.assertEqual(by_params, by_content)
        self.assertEqual(Response({"id": "1", "items": ["book"], "user": None}), by_params)

    async def test_get_order_missing_raises(self):
        with self.assertRaises(ResponseException) as caught:
            await self.service07.OrderQueryService().get_order(InMemoryRequest({"id": "9"}))
        self.assertEqual(404, caught.exception.status)


async def test_the_0_7_service_answers_over_the_broker_and_handles_its_events(service07):
    async with ServiceHarness(
        [service07.OrderCommandService, service07.OrderQueryService, service07.OrderEventService]
    ) as harness:
        created = await harness.request("CreateOrder", {"items": ["book"]})
        assert (created.status, created.content["id"]) == (200, "1")
        refused = await harness.request("CreateOrder", {"items": []})
        assert refused.status == 400  # its checker was not satisfied
        assert (await harness.request("GetOrders", None)).content == [created.content]
        assert (await harness.request("GetOrder", {"id": "9"})).status == 404
        await harness.send("OrderCreated", {"id": "1"})
    assert service07.EVENTS == [{"id": "1"}]
