"""HttpRequest and HttpResponse through a real server: routes, parameters, content types, responses."""

from __future__ import annotations

import dataclasses
import datetime
import json
import uuid
from decimal import Decimal
from typing import Any

import aiohttp
import msgpack
import pytest

from minos.networks import REQUEST_USER_CONTEXT_VAR, Response, enroute
from minos.networks.http import HttpRequest, HttpResponse, encode_content

USER = uuid.UUID("5d3c3d5f-3b8e-4f0e-9c63-0d9c8f1c1a2b")


@dataclasses.dataclass
class Page:
    number: str
    size: str = "10"


def _show(value: Any) -> Any:
    """A JSON-friendly view of a decoded value, naming its type."""
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    if isinstance(value, Page):
        return {"page": dataclasses.asdict(value)}
    if isinstance(value, dict):
        return {key: _show(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_show(item) for item in value]
    return value


class Inspector:
    """Handlers that answer with what they saw of the request."""

    @enroute.rest.query("/users/{user_id}", method="GET")
    async def get_user(self, request: HttpRequest) -> Response:
        return Response(
            {
                "url_params": await request.url_params(),
                "query_params": await request.query_params(),
                "params": await request.params(),
                "has": [request.has_url_params, request.has_query_params, request.has_params],
            }
        )

    @enroute.rest.query("/items/{item_id}/{size}", method="GET")
    async def typed_params(self, request: HttpRequest) -> Response:
        path = await request.url_params({"item_id": int, "size": float})
        query = await request.query_params(Page)
        return Response(
            {"path": path, "query": _show(query), "types": [type(v).__name__ for v in path.values()]}
        )

    @enroute.rest.query("/plain", method="GET")
    async def plain(self, request: HttpRequest) -> Response:
        return Response(
            {
                "has": [
                    request.has_url_params,
                    request.has_query_params,
                    request.has_params,
                    request.has_content,
                ]
            }
        )

    @enroute.rest.command("/content", method="POST")
    async def content(self, request: HttpRequest) -> Response:
        value = await request.content()
        return Response(
            {"content_type": request.content_type, "type": type(value).__name__, "value": _show(value)}
        )

    @enroute.rest.command("/pages", method="POST")
    async def pages(self, request: HttpRequest) -> Response:
        return Response(_show(await request.content(type_=Page)))

    @enroute.rest.query("/whoami", method="GET")
    async def whoami(self, request: HttpRequest) -> Response:
        context_user = REQUEST_USER_CONTEXT_VAR.get()
        return Response(
            {
                "user": None if request.user is None else str(request.user),
                "context": None if context_user is None else str(context_user),
                "trace": request.headers.get("X-Trace"),
            }
        )


async def test_path_parameters_are_url_params_and_the_query_string_is_query_params(serve, client):
    port = await serve(Inspector)
    async with client.get(f"{port.url}/users/42?page=2&tag=a&tag=b") as response:
        assert response.status == 200
        seen = await response.json()
    assert seen["url_params"] == {"user_id": "42"}
    assert seen["query_params"] == {"page": "2", "tag": ["a", "b"]}
    assert seen["params"] == {"user_id": "42", "page": "2", "tag": ["a", "b"]}
    assert seen["has"] == [True, True, True]


async def test_in_params_a_path_parameter_wins_over_a_query_parameter_of_the_same_name(serve, client):
    port = await serve(Inspector)
    async with client.get(f"{port.url}/users/42?user_id=7") as response:
        seen = await response.json()
    assert seen["params"] == {"user_id": "42"}
    assert seen["query_params"] == {"user_id": "7"}


async def test_a_request_without_parameters_or_body_says_so(serve, client):
    port = await serve(Inspector)
    async with client.get(f"{port.url}/plain") as response:
        assert await response.json() == {"has": [False, False, False, False]}


async def test_parameters_are_coerced_per_field_or_by_a_callable(serve, client):
    port = await serve(Inspector)
    async with client.get(f"{port.url}/items/7/1.5?number=3") as response:
        assert response.status == 200
        seen = await response.json()
    assert seen["path"] == {"item_id": 7, "size": 1.5}
    assert seen["types"] == ["int", "float"]
    assert seen["query"] == {"page": {"number": "3", "size": "10"}}


async def test_the_user_header_is_the_requests_user_and_the_context_user(serve, client):
    port = await serve(Inspector)
    async with client.get(f"{port.url}/whoami", headers={"user": str(USER), "X-Trace": "abc"}) as response:
        assert await response.json() == {"user": str(USER), "context": str(USER), "trace": "abc"}
    async with client.get(f"{port.url}/whoami") as response:
        assert await response.json() == {"user": None, "context": None, "trace": None}


@pytest.mark.parametrize(
    ("send", "content_type", "type_name", "value"),
    [
        ({"json": {"a": [1, 2], "b": None}}, "application/json", "dict", {"a": [1, 2], "b": None}),
        (
            {"data": b'{"x": 1}', "headers": {"Content-Type": "application/vnd.api+json"}},
            "application/vnd.api+json",
            "dict",
            {"x": 1},
        ),
        (
            {"data": [("a", "1"), ("b", "2"), ("b", "3")]},
            "application/x-www-form-urlencoded",
            "dict",
            {"a": "1", "b": ["2", "3"]},
        ),
        (
            {
                "data": "caf\u00e9".encode("latin-1"),
                "headers": {"Content-Type": "text/plain; charset=latin-1"},
            },
            "text/plain",
            "str",
            "caf\u00e9",
        ),
        ({"data": b"\x00\xff"}, "application/octet-stream", "bytes", {"bytes": "00ff"}),
        (
            {
                "data": msgpack.packb({"n": 1, "l": [True]}),
                "headers": {"Content-Type": "application/msgpack"},
            },
            "application/msgpack",
            "dict",
            {"n": 1, "l": [True]},
        ),
        (
            {"data": msgpack.packb([1, "x"]), "headers": {"Content-Type": "application/x-msgpack"}},
            "application/x-msgpack",
            "list",
            [1, "x"],
        ),
    ],
    ids=["json", "vendor+json", "form", "text-latin-1", "bytes", "msgpack", "x-msgpack"],
)
async def test_content_is_decoded_by_its_content_type(serve, client, send, content_type, type_name, value):
    port = await serve(Inspector)
    async with client.post(f"{port.url}/content", **send) as response:
        assert response.status == 200, await response.text()
        seen = await response.json()
    assert seen == {"content_type": content_type, "type": type_name, "value": value}


async def test_multipart_form_data_gives_fields_as_str_and_files_as_bytes(serve, client):
    port = await serve(Inspector)
    form = aiohttp.FormData()
    form.add_field("name", "report")
    form.add_field("file", b"\x01\x02", filename="r.bin", content_type="application/octet-stream")
    async with client.post(f"{port.url}/content", data=form) as response:
        seen = await response.json()
    assert seen == {
        "content_type": "multipart/form-data",
        "type": "dict",
        "value": {"name": "report", "file": {"bytes": "0102"}},
    }


async def test_content_is_coerced_by_type(serve, client):
    port = await serve(Inspector)
    async with client.post(f"{port.url}/pages", json={"number": "4"}) as response:
        assert await response.json() == {"page": {"number": "4", "size": "10"}}


class Responder:
    """Handlers answering with each kind of response."""

    @enroute.rest.query("/text", method="GET")
    async def text(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("h\u00e9llo")

    @enroute.rest.query("/html", method="GET")
    async def html(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("<b>hi</b>", content_type="text/html")

    @enroute.rest.query("/bytes", method="GET")
    async def raw_bytes(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse(b"\x89PNG", content_type="image/png")

    @enroute.rest.query("/octets", method="GET")
    async def octets(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse(b"\x00\x01")

    @enroute.rest.query("/json-string", method="GET")
    async def json_string(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("x", content_type="application/json")

    @enroute.rest.query("/rich", method="GET")
    async def rich(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse(
            {
                "id": USER,
                "at": datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.UTC),
                "day": datetime.date(2024, 5, 1),
                "price": Decimal("9.99"),
                "page": Page("1"),
            },
            status=201,
        )

    @enroute.rest.query("/msgpack", method="GET")
    async def as_msgpack(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse({"id": USER, "n": [1, 2]}, content_type="application/msgpack")

    @enroute.rest.command("/plain-response", method="POST")
    async def plain_response(self, request: HttpRequest) -> Response:
        return Response("created", status=201)

    @enroute.rest.command("/plain-bytes", method="POST")
    async def plain_bytes(self, request: HttpRequest) -> Response:
        return Response(b"\x00")

    @enroute.rest.command("/nothing", method="DELETE")
    async def nothing(self, request: HttpRequest) -> None:
        return None

    @enroute.rest.command("/empty", method="PUT")
    async def empty(self, request: HttpRequest) -> Response:
        return Response(status=202)

    @enroute.rest.query("/sync", method="GET")
    def sync_handler(self, request: HttpRequest) -> Response:
        return Response({"sync": True})


@pytest.mark.parametrize(
    ("method", "path", "status", "content_type", "body"),
    [
        ("GET", "/text", 200, "text/plain; charset=utf-8", "h\u00e9llo".encode()),
        ("GET", "/html", 200, "text/html; charset=utf-8", b"<b>hi</b>"),
        ("GET", "/bytes", 200, "image/png", b"\x89PNG"),
        ("GET", "/octets", 200, "application/octet-stream", b"\x00\x01"),
        ("GET", "/json-string", 200, "application/json", b'"x"'),
        ("POST", "/plain-response", 201, "application/json", b'"created"'),
        ("POST", "/plain-bytes", 200, "application/octet-stream", b"\x00"),
        ("DELETE", "/nothing", 200, None, b""),  # None: 200 with an empty body, as in minos 0.7
        ("PUT", "/empty", 202, None, b""),
        ("GET", "/sync", 200, "application/json", b'{"sync":true}'),
    ],
)
async def test_a_response_is_sent_with_its_status_and_content_type(
    serve, client, method, path, status, content_type, body
):
    port = await serve(Responder)
    async with client.request(method, f"{port.url}{path}") as response:
        assert response.status == status
        assert response.headers.get("Content-Type") == content_type
        assert await response.read() == body


async def test_json_responses_encode_uuid_datetime_decimal_and_dataclasses(serve, client):
    port = await serve(Responder)
    async with client.get(f"{port.url}/rich") as response:
        assert response.status == 201
        assert await response.json() == {
            "id": str(USER),
            "at": "2024-05-01T12:30:00+00:00",
            "day": "2024-05-01",
            "price": "9.99",
            "page": {"number": "1", "size": "10"},
        }


async def test_a_msgpack_response_is_packed(serve, client):
    port = await serve(Responder)
    async with client.get(f"{port.url}/msgpack") as response:
        assert response.headers["Content-Type"] == "application/msgpack"
        assert msgpack.unpackb(await response.read()) == {"id": str(USER), "n": [1, 2]}


def test_an_http_response_keeps_its_content_type_and_derives_one_when_given_none():
    assert HttpResponse({"a": 1}).content_type == "application/json"
    assert HttpResponse("a").content_type == "text/plain; charset=utf-8"
    assert HttpResponse(b"a").content_type == "application/octet-stream"
    assert HttpResponse("a", content_type="text/csv").content_type == "text/csv"
    assert HttpResponse({"a": 1}, status=201) == HttpResponse({"a": 1}, status=201)
    assert HttpResponse("a") != HttpResponse("a", content_type="application/json")
    assert HttpResponse("a") != Response("a")


def test_encode_content_refuses_what_the_content_type_cannot_carry():
    assert encode_content("\u00e9", "text/plain; charset=latin-1") == (b"\xe9", "text/plain; charset=latin-1")
    assert encode_content(None, None) == (b"", "application/json")
    assert json.loads(encode_content({1, 2}, "application/json")[0]) in ([1, 2], [2, 1])
    with pytest.raises(TypeError, match="cannot send dict as 'text/html'"):
        encode_content({"a": 1}, "text/html")
    with pytest.raises(TypeError, match="cannot encode object"):
        encode_content({"a": object()}, None)
