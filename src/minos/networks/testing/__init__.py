"""Helpers for testing code built on minos.networks: the transport contract suite."""

from .contract import Peer, TransportContract

__all__ = ["Peer", "TransportContract"]
