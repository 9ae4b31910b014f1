"""EntrypointLauncher: minos 0.7's ``__main__`` of a service, running it as ``minos-networks run`` does."""

from __future__ import annotations

from typing import Self

from minos.common.config import Config, ConfigSource

__all__ = ["EntrypointLauncher"]


class EntrypointLauncher:
    """Runs the service a configuration describes, exactly as ``minos-networks run CONFIG`` does.

    Every minos 0.7 service ends with::

        EntrypointLauncher.from_config(Path(__file__).parent / "config.yml").launch()

    which here checks the configuration (a 0.7 v1 or v2 file is read as such), starts the broker, HTTP and
    periodic ports and the discovery registration, prints ``minos-networks run: NAME ready ...``, serves
    until SIGTERM or SIGINT, and stops gracefully: the ``run`` command's own code, with its exit codes.

    Args:
        config: The service's configuration.
    """

    def __init__(self, config: Config) -> None:
        self.config = config

    @classmethod
    def from_config(cls, config: ConfigSource) -> Self:
        """The launcher of the service ``config`` (a Config, the path of a YAML file, or a mapping) describes.

        Raises:
            ConfigError: ``config`` is not a valid configuration.
        """
        # Not as_config: run logs a 0.7 file's notes itself, once logging is set up in the service's format.
        return cls(config if isinstance(config, Config) else Config(config))

    def launch(self) -> None:
        """Run the service until SIGTERM or SIGINT; must be called from the main thread, outside any event loop.

        Raises:
            SystemExit: With ``minos-networks run``'s exit code when it is not 0: 1 the service failed to start
                or to stop within its bound, 3 the configuration is wrong (nothing was started), 130/143 a
                second signal cut the stop short.
        """
        # Lazy on purpose: minos.networks imports minos.common, so minos.common may import it only when a
        # service is launched; at module level this would be a cycle, and minos.common would need
        # minos.networks to be importable. (0.7 put EntrypointLauncher in minos.common: its name stays here.)
        from minos.networks.cli.run import run_command

        code = run_command(self.config)
        if code:
            raise SystemExit(code)

    def __repr__(self) -> str:
        return f"EntrypointLauncher({self.config!r})"
