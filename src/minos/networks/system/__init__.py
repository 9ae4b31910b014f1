"""The running system: its composition root (ServiceRunner), readiness at ``GET /system/health``, host helpers."""

from ..actors.health import ComponentHealth, HealthCheck, HealthRegistry
from ..transports.network import consume_queue, get_host_ip, get_host_name, get_ip
from .gc_tuning import tune_gc
from .health import SystemService
from .logs import JsonFormatter, MessageContextFilter, TextFormatter, configure_logging, log_settings
from .metrics import ServiceCollector
from .runner import ServiceRunner, check_config, run_service

__all__ = [
    "ComponentHealth",
    "HealthCheck",
    "HealthRegistry",
    "JsonFormatter",
    "MessageContextFilter",
    "ServiceCollector",
    "ServiceRunner",
    "SystemService",
    "TextFormatter",
    "check_config",
    "configure_logging",
    "consume_queue",
    "get_host_ip",
    "get_host_name",
    "get_ip",
    "log_settings",
    "run_service",
    "tune_gc",
]
