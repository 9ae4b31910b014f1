"""Helpers for testing code built on minos.networks: the transport contract suite and a fake clock."""

from ..periodic.clock import FakeClock
from .contract import Peer, TransportContract

__all__ = ["FakeClock", "Peer", "TransportContract"]
