"""The exception tree drawn in ``minos.networks.exceptions``."""

import importlib
import pkgutil

import pytest

import minos.networks
from minos.common import MinosException
from minos.networks import exceptions as e
from minos.networks.actors import ActorTimeoutError, EscalationError, LoopClosedError, UnknownChildError
from minos.networks.transports import BrokerBindError, BrokerUnavailableError, ConnectionClosedError


def _drawn_tree() -> dict[str, str | None]:
    """The parent of each class drawn in the docstring of ``minos.networks.exceptions``, by name."""
    lines = e.__doc__.split("::", 1)[1].split("\n\n")[1].splitlines()
    parents: dict[str, str | None] = {}
    path: list[str] = []  # the names above the current line, by depth
    margin = len(lines[0]) - len(lines[0].lstrip())  # the root's indentation
    for line in lines:
        body = line.strip()
        if not body:
            continue
        if "+-- " in line:
            depth = (line.index("+-- ") - margin) // 4 + 1
            name = line.split("+-- ", 1)[1].split()[0]
        else:
            depth, name = 0, body.split()[0]
        del path[depth:]
        parents[name] = path[-1] if path else None
        path.append(name)
    return parents


def _all_subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


def _import_every_module() -> None:
    for module in pkgutil.walk_packages(minos.networks.__path__, "minos.networks."):
        if module.name != "minos.networks.__main__":
            importlib.import_module(module.name)


def test_every_exception_is_drawn_under_its_real_parent_and_exported():
    _import_every_module()
    drawn = _drawn_tree()
    public = [cls for cls in _all_subclasses(MinosException) if not cls.__name__.startswith("_")]
    public = [cls for cls in public if cls.__module__.startswith(("minos.networks", "minos.common"))]

    assert sorted(cls.__name__ for cls in public) == sorted(
        name for name in drawn if name != "MinosException"
    )
    for cls in public:
        parent = next(base for base in cls.__bases__ if issubclass(base, MinosException))
        assert drawn[cls.__name__] == parent.__name__, cls
        assert getattr(minos.networks, cls.__name__) is cls, f"{cls.__name__} is not in minos.networks"
        assert cls.__name__ in minos.networks.__all__
    assert drawn["MinosException"] is None


@pytest.mark.parametrize(
    ("child", "builtin"),
    [
        (e.FrameDecodeError, ValueError),
        (e.FrameEncodeError, TypeError),
        (ActorTimeoutError, TimeoutError),
        (LoopClosedError, RuntimeError),
        (EscalationError, RuntimeError),
        (UnknownChildError, LookupError),
        (BrokerUnavailableError, ConnectionError),
        (ConnectionClosedError, ConnectionError),
        (BrokerBindError, OSError),
    ],
)
def test_an_error_is_also_the_builtin_the_tree_says(child, builtin):
    assert issubclass(child, builtin)
    assert child.__name__ in e.__doc__


def test_a_response_exception_carries_its_message_and_exact_status():
    error = e.ResponseException("order not found", status=404)
    assert error.status == 404
    assert str(error) == "order not found"
    assert repr(error) == "ResponseException(message='order not found', status=404)"
    assert e.ResponseException().status == 400


def test_a_response_exception_accepts_the_seeds_positional_status():
    error = e.ResponseException(status=409)
    assert error.status == 409
    assert not issubclass(e.ResponseException, e.MinosNetworkException)
