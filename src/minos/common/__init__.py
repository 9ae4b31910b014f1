"""What every Minos package shares: the root exception and the service configuration."""

from __future__ import annotations

from minos.common.config import Config, ConfigError, ConfigSource, as_config
from minos.common.exceptions import MinosException

__all__ = ["Config", "ConfigError", "ConfigSource", "MinosException", "as_config"]
