"""OpenAPIService: the OpenAPI 3.1 document of a service's REST routes, served at ``GET /spec/openapi``."""

from __future__ import annotations

import copy
import logging
from typing import Any

from ..enroute import RestEnrouteDecorator, enroute
from ..protocol.requests import Request, Response
from .routes import RouteInfo, SpecService, collect_routes, document_info, unique_id

__all__ = ["OPENAPI_VERSION", "OpenAPIService", "path_template"]

logger = logging.getLogger(__name__)

OPENAPI_VERSION = "3.1.0"

# The operations a path item may have, in the order the document lists them.
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_WITH_BODY = frozenset({"put", "post", "patch"})
# What the HTTP port answers on any error (``http.connector``): the status again, and a message.
_ERROR_SCHEMA = {
    "type": "object",
    "required": ["status", "message"],
    "properties": {"status": {"type": "integer"}, "message": {"type": "string"}},
}


class OpenAPIService(SpecService):
    """Describes the REST routes of the services in a Config as an OpenAPI 3.1 document.

    Each route becomes an operation under its path, with its method (lower-cased, as OpenAPI wants it),
    its path parameters (``{name}`` segments; an aiohttp pattern ``{name:regex}`` gives the parameter that
    pattern), the handler's docstring as summary and description, and its service as tag. Decorator keyword
    arguments refine it: ``summary``, ``description``, ``tags``, ``deprecated``, and ``request_schema`` and
    ``response_schema`` (JSON Schemas of the JSON bodies; any JSON when not given). ``spec.version`` and
    ``spec.description`` in the Config fill the ``info`` object.

    List it in ``services:`` to serve the document at ``GET /spec/openapi``.

    Args:
        config: The service's configuration; its ``services`` are described, this one included.
    """

    @enroute.rest.query("/spec/openapi", method="GET")
    async def generate_specification(self, request: Request) -> Response:
        """The OpenAPI 3.1 document of this service's REST routes."""
        return self._response()

    def _build(self) -> dict[str, Any]:
        paths: dict[str, dict[str, Any]] = {}
        operation_ids: set[str] = set()
        for route in collect_routes(self.config, (RestEnrouteDecorator,)):
            decorator = route.decorator
            assert isinstance(decorator, RestEnrouteDecorator)
            method = decorator.method.lower()
            if method not in _METHODS:
                logger.warning(
                    "%s.%s: method %r has no place in an OpenAPI document; the route is left out",
                    route.service.__qualname__,
                    route.handler,
                    decorator.method,
                )
                continue
            path, parameters = path_template(decorator.url)
            item = paths.setdefault(path, {})
            if parameters:
                item["parameters"] = parameters
            item[method] = _operation(route, method, operation_ids)
        ordered = {
            path: {key: paths[path][key] for key in ("parameters", *_METHODS) if key in paths[path]}
            for path in sorted(paths)
        }
        return {
            "openapi": OPENAPI_VERSION,
            "info": document_info(self.config, "REST API"),
            "paths": ordered,
            "components": {"schemas": {"Error": copy.deepcopy(_ERROR_SCHEMA)}},
        }


def path_template(url: str) -> tuple[str, list[dict[str, Any]]]:
    """Splits an aiohttp route path into an OpenAPI path template and its path parameters.

    ``"/users/{user_id}"`` gives itself and a required string parameter ``user_id``;
    ``"/items/{id:\\d+}"`` gives ``"/items/{id}"`` and a parameter whose schema has the pattern ``^\\d+$``.
    """
    path, parameters, index = [], [], 0
    while index < len(url):
        start = url.find("{", index)
        if start < 0:
            path.append(url[index:])
            break
        end, depth = start, 0
        for end in range(start, len(url)):  # a pattern may hold braces of its own: {code:\d{3}}
            depth += {"{": 1, "}": -1}.get(url[end], 0)
            if depth == 0:
                break
        name, _, pattern = url[start + 1 : end].partition(":")
        schema: dict[str, Any] = {"type": "string"}
        if pattern:
            schema["pattern"] = f"^{pattern}$"
        path.append(url[index:start] + "{" + name + "}")
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
        index = end + 1
    return "".join(path), parameters


def _operation(route: RouteInfo, method: str, operation_ids: set[str]) -> dict[str, Any]:
    kwargs = route.kwargs
    operation: dict[str, Any] = {
        "operationId": unique_id(f"{route.service.__name__}_{route.handler}", operation_ids),
        "tags": list(kwargs.get("tags", [route.service.__name__])),
    }
    if route.summary:
        operation["summary"] = route.summary
    if route.description:
        operation["description"] = route.description
    if kwargs.get("deprecated"):
        operation["deprecated"] = True
    if method in _WITH_BODY:
        operation["requestBody"] = {
            "content": {"application/json": {"schema": kwargs.get("request_schema", {})}}
        }
    operation["responses"] = {
        "200": {
            "description": "Success",
            "content": {"application/json": {"schema": kwargs.get("response_schema", {})}},
        },
        "default": {
            "description": "An error: its status code and a message",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        },
    }
    return operation
