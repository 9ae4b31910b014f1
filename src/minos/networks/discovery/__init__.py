"""Service discovery: registering a service's REST endpoints with a discovery service while it runs."""

from .clients import (
    Backoff,
    DiscoveryClient,
    DiscoveryUnavailableError,
    InMemoryDiscoveryClient,
    MinosDiscoveryClient,
)
from .connector import (
    DISCOVERY_KEYS,
    DiscoveryConnector,
    DiscoveryState,
    discovery_keys,
    endpoints_from_config,
)

__all__ = [
    "DISCOVERY_KEYS",
    "Backoff",
    "DiscoveryClient",
    "DiscoveryConnector",
    "DiscoveryState",
    "DiscoveryUnavailableError",
    "InMemoryDiscoveryClient",
    "MinosDiscoveryClient",
    "discovery_keys",
    "endpoints_from_config",
]
