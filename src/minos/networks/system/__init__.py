"""The running system: its composition root (ServiceRunner), readiness at ``GET /system/health``, host helpers."""

from .health import HEALTH_CHECKS, ComponentHealth, HealthCheck, HealthRegistry, SystemService
from .network import consume_queue, get_host_ip, get_host_name, get_ip
from .runner import ServiceRunner, check_config, run_service

__all__ = [
    "HEALTH_CHECKS",
    "ComponentHealth",
    "HealthCheck",
    "HealthRegistry",
    "ServiceRunner",
    "SystemService",
    "check_config",
    "consume_queue",
    "get_host_ip",
    "get_host_name",
    "get_ip",
    "run_service",
]
