"""HTTP server spans: the route's name, the request's traceparent continued, a 5xx failing the span."""

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from minos.networks import Request, Response, enroute

from ..spans import recording

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
PARENT_ID = 0x00F067AA0BA902B7


class Orders:
    @enroute.rest.query("/orders/{id}", "GET")
    async def get_order(self, request: Request) -> Response:
        return Response({"id": (await request.url_params())["id"]})

    @enroute.rest.command("/orders/{id}", "DELETE")
    async def delete_order(self, request: Request) -> Response:
        raise RuntimeError("the database is gone")


@pytest.fixture
def spans():
    with recording() as spans:
        yield spans


async def test_a_request_with_a_traceparent_gets_a_server_span_continuing_it(serve, client, spans):
    port = await serve(Orders)
    traceparent = f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-01"
    async with client.get(f"{port.url}/orders/7?full=1", headers={"traceparent": traceparent}) as response:
        assert response.status == 200
    span = (await spans.wait_named("GET /orders/{id}"))["GET /orders/{id}"]
    assert span.kind == SpanKind.SERVER
    assert (span.context.trace_id, span.parent.span_id) == (TRACE_ID, PARENT_ID)
    assert span.parent.is_remote
    assert span.attributes["http.request.method"] == "GET"
    assert span.attributes["http.route"] == "/orders/{id}"
    assert span.attributes["url.path"] == "/orders/7"
    assert span.attributes["url.query"] == "full=1"
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["server.address"] == "127.0.0.1"
    assert span.status.status_code == StatusCode.UNSET


async def test_a_request_the_handler_fails_is_a_failed_server_span_starting_a_trace(serve, client, spans):
    port = await serve(Orders)
    async with client.delete(f"{port.url}/orders/7") as response:
        assert response.status == 500
    async with client.get(f"{port.url}/nowhere") as response:
        assert response.status == 404
    named = await spans.wait_named("DELETE /orders/{id}", "GET")
    failed, missing = named["DELETE /orders/{id}"], named["GET"]
    assert failed.parent is None
    assert failed.attributes["http.response.status_code"] == 500
    assert failed.status.status_code == StatusCode.ERROR
    assert missing.attributes["http.response.status_code"] == 404
    assert missing.status.status_code == StatusCode.UNSET  # the client's error, not the server's
