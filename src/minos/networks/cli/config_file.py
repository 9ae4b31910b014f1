"""How a command reads the service's configuration file: import paths set, problems printed, not raised."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from minos.common import Config, ConfigError

from ..system import check_config
from .exits import print_problems

__all__ = ["add_import_paths", "load_config"]


def load_config(
    path: str | Config, prefix: str, *, check: Callable[[Config], list[ConfigError]] = check_config
) -> Config | None:
    """Read and check ``path``, printing every problem on stderr as ``<file>: <key>: <problem>``.

    The service's modules are imported as ``python -m`` would find them: from the config file's
    directory and from the working directory (see :func:`add_import_paths`).

    Args:
        path: The YAML file, or a Config already read (``EntrypointLauncher``).
        prefix: Starts each printed line (the command's name).
        check: What to check beyond ``Config``'s own layout checks: ``check_config`` (everything),
            ``unknown_keys`` (the keys only: commands that build no service), or nothing (``run``,
            which runs ``check_config`` itself once logging is set up).

    Returns:
        The configuration, or None when it has a problem.
    """
    add_import_paths(path.path if isinstance(path, Config) else path)
    try:
        config = path if isinstance(path, Config) else Config(path)
    except ConfigError as error:
        print_problems(prefix, str(path), [error])
        return None
    problems = check(config)
    if problems:
        print_problems(prefix, config.source, problems)
        return None
    return config


def add_import_paths(path: str | os.PathLike[str] | None) -> None:
    """Put the working directory and the directory of the config file ``path`` on ``sys.path``.

    A 0.7 service lists its own modules (``src.commands.CartCommandService``) relative to where it runs
    and where its config.yml lies; ``python -m`` puts the working directory first, the ``minos-networks``
    script puts its own directory there instead, so the command adds both (each once, at the end: an
    installed package of the same name still wins, as it would under ``python -m``).
    """
    places = [os.getcwd()]
    if path is not None:
        places.insert(0, str(Path(path).resolve().parent))
    present = {os.path.abspath(entry or os.curdir) for entry in sys.path}
    for place in places:
        if place not in present:
            sys.path.append(place)
            present.add(place)
