"""Services to describe, a Config listing them with the spec services, and a check that every $ref resolves."""

import pytest

from minos.common import Config
from minos.networks import BrokerMessageV1Strategy, enroute
from minos.networks.specs import AsyncAPIService, OpenAPIService
from minos.networks.system import SystemService


class UserService:
    @enroute.rest.command("/users", method="POST", request_schema={"type": "object", "required": ["name"]})
    @enroute.broker.command("user.create", response_schema={"type": "object"})
    async def create_user(self, request):
        """Creates a user.

        The name must be unique.

        Args:
            request: The new user.
        """

    @enroute.rest.query("/users/{user_id}", method="GET")
    @enroute.broker.query("user.get")
    async def get_user(self, request):
        """Reads one user."""

    @enroute.rest.query(r"/users/{user_id}/orders/{order:\d{4}}", method="get", tags=["orders"])
    async def get_order(self, request): ...

    @enroute.rest.command("/users/{user_id}", method="DELETE", deprecated=True)
    async def delete_user(self, request): ...

    @enroute.broker.event("user.created", summary="A user was created.")
    async def on_created(self, request): ...

    @enroute.periodic.event("* * * * *")
    async def tick(self, request): ...


class AuditService:
    @enroute.broker.event("user.created")
    async def audit(self, request):
        """Writes the audit trail."""

    @enroute.broker.command("audit.replay", strategy=BrokerMessageV1Strategy.MULTICAST)
    async def replay(self, request): ...

    @enroute.rest.query("/audit", method="PROPFIND")
    async def odd_method(self, request): ...


@pytest.fixture
def config():
    return Config(
        {
            "name": "users",
            "services": [UserService, AuditService, OpenAPIService, AsyncAPIService, SystemService],
            "spec": {"version": "2.1.0"},
        }
    )


def unresolved_refs(document):
    """The ``$ref`` values of a document that do not point at something inside it."""

    def resolve(pointer):
        node = document
        for part in pointer.removeprefix("#/").split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    missing = []

    def walk(node):
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and not (ref.startswith("#/") and resolve(ref)):
                missing.append(ref)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    return missing
