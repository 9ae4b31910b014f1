"""Moving frames: the broker's routing table, ZeroMQ endpoints and the in-memory twin."""

from .routing import Delivery, RoutingStats, RoutingTable

__all__ = ["Delivery", "RoutingStats", "RoutingTable"]
