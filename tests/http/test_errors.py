"""Every error path answers JSON with the status and a message, never a traceback."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import ClassVar

import pytest
from aiohttp import web

from minos.networks import BrokerResponseException, Response, ResponseException, enroute
from minos.networks.http import HttpRequest, HttpResponseException
from minos.networks.http.errors import MAX_HEADER_LINE, MAX_REQUEST_LINE


class Failing:
    """Handlers that fail in each way a handler can."""

    handled: ClassVar[list[str]] = []

    @enroute.rest.query("/forbidden", method="GET")
    async def forbidden(self, request: HttpRequest) -> Response:
        raise ResponseException("you may not", status=403)

    @enroute.rest.query("/gone", method="GET")
    async def gone(self, request: HttpRequest) -> Response:
        raise HttpResponseException("it left", status=410)

    @enroute.rest.query("/default-status", method="GET")
    async def default_status(self, request: HttpRequest) -> Response:
        raise BrokerResponseException("bad input")

    @enroute.rest.query("/aiohttp-error", method="GET")
    async def aiohttp_error(self, request: HttpRequest) -> Response:
        raise web.HTTPNotFound(text="no such user")

    @enroute.rest.query("/not-an-error", method="GET")
    async def not_an_error(self, request: HttpRequest) -> Response:
        raise ResponseException("odd", status=200)

    @enroute.rest.query("/crash", method="GET")
    async def crash(self, request: HttpRequest) -> Response:
        raise KeyError("secret-database-password")

    @enroute.rest.query("/wrong-return", method="GET")
    async def wrong_return(self, request: HttpRequest) -> dict[str, int]:
        return {"a": 1}

    @enroute.rest.command("/echo", method="POST")
    async def echo(self, request: HttpRequest) -> Response:
        Failing.handled.append("echo")
        return Response({"size": len(await request.content())})

    @enroute.rest.command("/parse", method="POST")
    async def parse(self, request: HttpRequest) -> Response:
        return Response({"content": await request.content()})

    @enroute.rest.command("/coerce", method="POST")
    async def coerce(self, request: HttpRequest) -> Response:
        return Response(await request.content({"count": int}))

    @enroute.rest.query("/params/{count}", method="GET")
    async def params(self, request: HttpRequest) -> Response:
        return Response(await request.url_params({"count": int}))

    @enroute.rest.query("/no-params", method="GET")
    async def no_params(self, request: HttpRequest) -> Response:
        return Response(await request.params())

    @enroute.rest.query("/guarded", method="GET")
    async def guarded(self, request: HttpRequest) -> Response:
        return Response("never")

    @guarded.check(max_attempts=1, delay=0)
    def refuse(self, request: HttpRequest) -> bool:
        return False


async def _error(response) -> dict[str, object]:
    assert response.headers["Content-Type"] == "application/json"
    body = await response.json()
    assert body.keys() == {"status", "message"}
    assert body["status"] == response.status
    assert "Traceback" not in body["message"]
    return body


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/forbidden", 403, "you may not"),
        ("/gone", 410, "it left"),
        ("/default-status", 400, "bad input"),
        ("/guarded", 400, "checker 'Failing.refuse' was not satisfied after 1 attempt(s)"),
        ("/params/many", 400, "the path parameters: field 'count' = 'many' is not a valid int"),
        ("/no-params", 400, "has no params"),
        ("/nowhere", 404, "no route for GET /nowhere"),
        ("/aiohttp-error", 404, "no such user"),
    ],
)
async def test_a_failed_request_gets_its_status_and_a_json_message(serve, client, path, status, message):
    port = await serve(Failing)
    async with client.get(f"{port.url}{path}") as response:
        assert response.status == status
        body = await _error(response)
    assert message in body["message"]


async def test_a_wrong_method_is_405_with_the_allowed_methods(serve, client):
    port = await serve(Failing)
    async with client.delete(f"{port.url}/echo") as response:
        assert response.status == 405
        assert response.headers["Allow"] == "POST"
        body = await _error(response)
    assert body["message"] == "DELETE is not allowed on /echo; allowed: POST"


@pytest.mark.parametrize(
    ("path", "exception"),
    [("/crash", "KeyError"), ("/wrong-return", "TypeError"), ("/not-an-error", "invalid error status")],
)
async def test_any_other_exception_is_500_naming_only_its_type_and_the_traceback_is_logged(
    serve, client, caplog, path, exception
):
    port = await serve(Failing)
    with caplog.at_level(logging.ERROR, logger="minos.networks.http"):
        async with client.get(f"{port.url}{path}") as response:
            assert response.status == 500
            body = await _error(response)
    assert body["message"] == f"Internal error: {exception}"
    assert "secret" not in body["message"]
    if path == "/crash":
        assert "secret-database-password" in caplog.text  # the log has it all, the caller nothing
        assert any(record.exc_info for record in caplog.records)


@pytest.mark.parametrize(
    ("data", "content_type", "status", "message"),
    [
        (b"{not json", "application/json", 400, "the body is not valid JSON"),
        (b"\xc1", "application/msgpack", 400, "the body is not valid msgpack"),
        (b"\xff\xfe", "text/plain; charset=utf-8", 400, "the body is not text in charset 'utf-8'"),
        (
            b"GIF89a",
            "image/gif",
            415,
            "content type 'image/gif' is not supported; send one of application/json",
        ),
        (b'{"count": "x"}', "application/json", 400, "the body: field 'count' = 'x' is not a valid int"),
    ],
)
async def test_a_body_that_does_not_decode_is_answered_with_a_client_error(
    serve, client, data, content_type, status, message
):
    port = await serve(Failing)
    path = "/coerce" if b"count" in data else "/parse"
    async with client.post(
        f"{port.url}{path}", data=data, headers={"Content-Type": content_type}
    ) as response:
        assert response.status == status
        body = await _error(response)
    assert message in body["message"]


async def test_asking_for_content_that_was_not_sent_is_400(serve, client):
    port = await serve(Failing)
    async with client.post(f"{port.url}/parse") as response:
        assert response.status == 400
        body = await _error(response)
    assert "has no content" in body["message"]


async def test_a_user_header_that_is_not_a_uuid_is_400(serve, client):
    port = await serve(Failing)
    async with client.post(f"{port.url}/echo", json={}, headers={"user": "admin"}) as response:
        assert response.status == 400
        body = await _error(response)
    assert body["message"].startswith("the 'user' header must be a UUID")


async def test_a_body_over_the_limit_is_413_before_the_handler_runs(serve, client):
    Failing.handled.clear()
    port = await serve(Failing, max_body_size=1024)
    async with client.post(f"{port.url}/echo", data=b"x" * 1024) as response:
        assert response.status == 200
        assert await response.json() == {"size": 1024}
    async with client.post(f"{port.url}/echo", data=b"x" * 2048) as response:
        assert response.status == 413
        body = await _error(response)
    assert body["message"] == "the body is 2048 bytes, over the limit of 1024; send less"
    assert Failing.handled == ["echo"]


async def test_a_chunked_body_over_the_limit_is_413_when_the_handler_reads_it(serve, client):
    port = await serve(Failing, max_body_size=1024)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"x" * 512

    async with client.post(f"{port.url}/echo", data=chunks()) as response:
        assert response.status == 413
        body = await _error(response)
    assert "1024" in body["message"]


async def test_a_deeply_nested_valid_json_body_is_400_not_a_recursion_error(serve, client, caplog):
    port = await serve(Failing)
    body = "[" * 100_000 + "]" * 100_000  # valid JSON, deeper than the decoder's recursion allows
    headers = {"Content-Type": "application/json"}
    async with client.post(f"{port.url}/parse", data=body, headers=headers) as response:
        assert response.status == 400
        assert (await _error(response))["message"] == (
            "the JSON body nests arrays or objects too deeply to decode; send a flatter document"
        )
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


async def _raw_exchange(port, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` as raw bytes on a new connection; the status, headers and body of the answer."""
    reader, writer = await asyncio.open_connection(port.url.host, port.url.port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(10):
            answer = await reader.read()  # the server closes the connection after an error
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    ("request_bytes", "status", "message"),
    [
        (
            b"GET /echo?" + b"q" * MAX_REQUEST_LINE + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            414,
            f"the request line is longer than {MAX_REQUEST_LINE} bytes; shorten the URL",
        ),
        (
            b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: " + b"q" * (MAX_HEADER_LINE + 1) + b"\r\n\r\n",
            431,
            f"a header is longer than {MAX_HEADER_LINE} bytes; send shorter headers",
        ),
        (
            b"GET /echo HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: q\r\n" % n for n in range(200)) + b"\r\n",
            431,
            "too many headers; send fewer",
        ),
        (b"\x16\x03\x01 qqq\r\n\r\n", 400, "the request is not valid HTTP/1.1 (BadHttpMethod)"),
    ],
    ids=["request line", "header", "header count", "not http"],
)
async def test_what_the_http_parser_refuses_is_answered_in_json_without_echoing_the_request(
    serve, caplog, request_bytes, status, message
):
    port = await serve(Failing)
    got, headers, body = await _raw_exchange(port, request_bytes)
    assert (got, headers["Content-Type"]) == (status, "application/json")
    assert json.loads(body) == {"status": status, "message": message}
    assert b"qqq" not in body
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]
