"""HTTP: HttpPort serves the REST routes of a service's handlers through aiohttp, in an actor's loop."""

from .connector import HTTP_KEYS, AioHttpConnector, HttpAdapter, HttpConnector
from .port import HttpPort, HttpServerActor
from .requests import Coercion, HttpRequest, HttpResponse, HttpResponseException, encode_content

__all__ = [
    "HTTP_KEYS",
    "AioHttpConnector",
    "Coercion",
    "HttpAdapter",
    "HttpConnector",
    "HttpPort",
    "HttpRequest",
    "HttpResponse",
    "HttpResponseException",
    "HttpServerActor",
    "encode_content",
]
