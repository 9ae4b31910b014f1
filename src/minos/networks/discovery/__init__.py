"""Service discovery: registering a service's REST endpoints with a discovery service while it runs."""

from .clients import (
    Backoff,
    DiscoveryClient,
    DiscoveryUnavailableError,
    InMemoryDiscoveryClient,
    MinosDiscoveryClient,
)
from .connector import DiscoveryConnector, DiscoveryState, endpoints_from_config

__all__ = [
    "Backoff",
    "DiscoveryClient",
    "DiscoveryConnector",
    "DiscoveryState",
    "DiscoveryUnavailableError",
    "InMemoryDiscoveryClient",
    "MinosDiscoveryClient",
    "endpoints_from_config",
]
