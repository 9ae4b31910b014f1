"""Helpers for testing code built on minos.networks: a service harness, the transport contract suite and a fake clock."""

from ..periodic.clock import FakeClock
from .contract import Peer, TransportContract
from .service import ServiceHarness

__all__ = ["FakeClock", "Peer", "ServiceHarness", "TransportContract"]
