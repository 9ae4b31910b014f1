"""API specifications generated from the decorated handlers: OpenAPI for REST, AsyncAPI for the broker."""

from .asyncapi import ASYNCAPI_VERSION, AsyncAPIService
from .openapi import OPENAPI_VERSION, OpenAPIService, path_template
from .routes import RouteInfo, collect_routes

__all__ = [
    "ASYNCAPI_VERSION",
    "OPENAPI_VERSION",
    "AsyncAPIService",
    "OpenAPIService",
    "RouteInfo",
    "collect_routes",
    "path_template",
]
