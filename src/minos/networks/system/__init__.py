"""System endpoints and helpers: readiness at ``GET /system/health``, and the host's name and address."""

from .health import HEALTH_CHECKS, ComponentHealth, HealthCheck, HealthRegistry, SystemService
from .network import consume_queue, get_host_ip, get_host_name, get_ip

__all__ = [
    "HEALTH_CHECKS",
    "ComponentHealth",
    "HealthCheck",
    "HealthRegistry",
    "SystemService",
    "consume_queue",
    "get_host_ip",
    "get_host_name",
    "get_ip",
]
