"""The demo behind ``make run``: a service with an embedded broker, answering requests from a client."""

from __future__ import annotations

import asyncio
import time
from uuid import uuid4

from minos.common import Config

from .brokers import BrokerClient, BrokerPort
from .enroute import enroute
from .protocol import BrokerMessageV1, BrokerMessageV1Payload, FrameCodec, Request, Response

__all__ = ["UserService", "main"]


class UserService:
    """The seed's example service, trimmed to its broker handlers."""

    @enroute.broker.command("user.create")
    async def create_user(self, request: Request) -> Response:
        user = await request.content()
        return Response({"id": str(uuid4()), "name": user["name"], "status": "created"})

    @enroute.broker.query("user.get")
    async def get_user(self, request: Request) -> Response:
        content = await request.content()
        return Response({"id": content["id"], "name": "John Doe"})


CONFIG = {
    "name": "users",
    "interfaces": {"broker": {"endpoint": "inproc://minos-demo", "concurrency": 10}},
    "services": [UserService],
}


async def main(requests: int = 2000) -> bool:
    """Start the service, send it requests through a BrokerClient, print what comes back."""
    config = Config(CONFIG)
    async with BrokerPort.from_config(config), BrokerClient.from_config(config) as client:
        request = BrokerMessageV1("user.create", BrokerMessageV1Payload({"name": "Ada"}))
        frames = FrameCodec().encode(request)
        print(f"request on the wire: {len(frames[0])}-byte topic frame + {len(frames[1])}-byte msgpack body")
        await client.send(request)
        reply = await client.receive()
        print(f"user.create -> status {int(reply.status)}, content {reply.content}")
        print(f"reply correlates with the request: {reply.identifier == request.identifier}")

        started = time.perf_counter()
        await asyncio.gather(
            *(
                client.send(BrokerMessageV1("user.get", BrokerMessageV1Payload({"id": i})))
                for i in range(requests)
            )
        )
        answers = [message.content["id"] async for message in client.receive_many(requests, timeout=60)]
        elapsed = time.perf_counter() - started
        print(
            f"{requests} queries answered in {elapsed:.2f} s ({requests / elapsed:,.0f} req/s, all in flight)"
        )
        return sorted(answers) == list(range(requests)) and reply.ok


def run() -> int:
    """Run the demo; the exit code is 0 when every reply came back right."""
    return 0 if asyncio.run(main()) else 1
