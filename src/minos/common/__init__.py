"""What every Minos package shares: the root exception, the service configuration and its launcher."""

from __future__ import annotations

from minos.common.config import Config, ConfigError, ConfigSource, as_config
from minos.common.exceptions import MinosException
from minos.common.launcher import EntrypointLauncher

__all__ = ["Config", "ConfigError", "ConfigSource", "EntrypointLauncher", "MinosException", "as_config"]
