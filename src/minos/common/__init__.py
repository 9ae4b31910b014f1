"""What every Minos package shares: the root exception, the service configuration and its launcher."""

from __future__ import annotations

from minos.common.config import TOP_LEVEL_KEYS, Config, ConfigError, ConfigSource, KnownKeys, as_config
from minos.common.exceptions import MinosException
from minos.common.launcher import EntrypointLauncher

__all__ = [
    "TOP_LEVEL_KEYS",
    "Config",
    "ConfigError",
    "ConfigSource",
    "EntrypointLauncher",
    "KnownKeys",
    "MinosException",
    "as_config",
]
