"""Handler and checker metadata: what ``@enroute`` and ``@handler.check`` attach to a function."""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableSet
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast, runtime_checkable

from ..exceptions import (
    MinosMultipleEnrouteDecoratorKindsException,
    NotSatisfiedCheckerException,
    ResponseException,
)
from ..protocol.messages import EnrouteDecoratorKind
from ..protocol.requests import Request, Response

if TYPE_CHECKING:
    from .decorators import EnrouteDecorator

__all__ = [
    "Action",
    "CheckDecorator",
    "Checker",
    "CheckerMeta",
    "CheckerWrapper",
    "Checkers",
    "Handler",
    "HandlerMeta",
    "HandlerWrapper",
]

Handler = Callable[[Request], Response | Awaitable[Response | None] | None]
"""A handler as users write it: sync or async, taking a request, returning a response or None."""

Checker = Callable[[Request], bool | Awaitable[bool | None] | None]
"""A checker as users write it: sync or async, taking a request, telling whether the handler may run."""

Action = Callable[[Request], Awaitable[Response | None]]
"""A route as routers build it: an async callable with hooks, checkers and middleware composed in."""

_T = TypeVar("_T")


@runtime_checkable
class HandlerWrapper(Protocol):
    """A function that ``@enroute`` has decorated: it carries ``meta`` and ``check``."""

    meta: HandlerMeta

    def check(self, max_attempts: int = 10, delay: float | timedelta = 0.1) -> CheckDecorator: ...

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...


@runtime_checkable
class CheckerWrapper(Protocol):
    """A function that ``@handler.check(...)`` has decorated: it carries ``meta``."""

    meta: CheckerMeta

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...


class HandlerMeta:
    """The routes and checkers of one handler, stored on the function as ``meta``.

    The function also gets ``check``, the factory of checker decorators (``@handler.check(...)``).

    As in minos 0.7, two are equal when their function, routes and checkers are (``tuple(meta)`` is
    ``(func, decorators, checkers)``), and the hash is the function's.

    Args:
        func: The handler function (for a ``staticmethod`` or ``classmethod``, the function inside).
        decorators: Its routes so far (minos 0.7's second argument); none by default.
        checkers: Its checkers so far, in the order they run; none by default.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        decorators: Iterable[EnrouteDecorator] | None = None,
        checkers: Iterable[CheckerMeta] | None = None,
    ) -> None:
        self.func = func
        self.decorators: set[EnrouteDecorator] = set(decorators or ())
        self.checkers = Checkers(checkers or ())

    @classmethod
    def of(cls, func: object) -> HandlerMeta:
        """Returns the metadata of ``func``, attaching new metadata when it has none yet.

        Raises:
            TypeError: ``func`` is neither callable nor a ``staticmethod``/``classmethod``, or cannot take
                attributes.
        """
        inner = _unwrap(func)
        meta = getattr(inner, "meta", None)
        if isinstance(meta, CheckerMeta):
            raise TypeError(f"{_describe(inner)} is a checker; a checker cannot also be a handler")
        if not isinstance(meta, HandlerMeta):
            meta = cls(inner)
        _attach(func, meta=meta, check=meta.check)
        return meta

    @property
    def qualname(self) -> str:
        """The handler's qualified name, e.g. ``"UserService.create_user"``."""
        return _describe(self.func)

    @property
    def kind(self) -> EnrouteDecoratorKind | None:
        """The kind shared by the handler's decorators, or None before the first one."""
        decorator = next(iter(self.decorators), None)
        return None if decorator is None else decorator.KIND

    def add_decorator(self, decorator: EnrouteDecorator) -> None:
        """Records a route of the handler.

        Raises:
            MinosMultipleEnrouteDecoratorKindsException: the handler already has a route of another kind.
        """
        for other in self.decorators:
            if other.KIND is not decorator.KIND:
                raise MinosMultipleEnrouteDecoratorKindsException(
                    f"handler {self.qualname!r} cannot be both a {other.KIND.name} ({other!r}) and a "
                    f"{decorator.KIND.name} ({decorator!r}): a handler has one kind, so split it into two "
                    "methods"
                )
        self.decorators.add(decorator)

    def check(self, max_attempts: int = 10, delay: float | timedelta = 0.1) -> CheckDecorator:
        """Returns a decorator that makes a function a checker of this handler.

        Args:
            max_attempts: How many times the checker is tried before the request is refused.
            delay: Seconds (or a ``timedelta``) to wait between two attempts (``asyncio.sleep``: the loop is
                never blocked).

        Raises:
            ValueError: ``max_attempts`` is below 1 or ``delay`` is negative or not finite.
        """
        return CheckDecorator(self, max_attempts=max_attempts, delay=delay)

    @property
    def wrapper(self) -> HandlerWrapper:
        """minos 0.7's callable handler: ``async_wrapper`` for a coroutine function, else ``sync_wrapper``."""
        return self.async_wrapper if inspect.iscoroutinefunction(self.func) else self.sync_wrapper

    @functools.cached_property
    def async_wrapper(self) -> HandlerWrapper:
        """The handler as a coroutine function that runs the checkers first (minos 0.7's wrapper).

        It takes the handler's arguments (``self`` first for a method). A checker not satisfied after its
        attempts raises ``ResponseException`` (status 400) and the handler does not run. Routes do not use
        it: they run the checkers themselves.
        """
        func = self.func

        @functools.wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                await CheckerMeta.run_async(self.checkers, *args, **kwargs)
            except NotSatisfiedCheckerException as exc:
                raise ResponseException(str(exc), status=400) from exc
            response = func(*args, **kwargs)
            return await response if inspect.isawaitable(response) else response

        return self._mark(wrapper)

    @functools.cached_property
    def sync_wrapper(self) -> HandlerWrapper:
        """The handler as a plain function that runs the checkers first, sleeping between attempts.

        Raises:
            ValueError: the handler is a coroutine function.
        """
        func = self.func
        if inspect.iscoroutinefunction(func):
            raise ValueError(f"{self.qualname} is a coroutine function: use async_wrapper")

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                CheckerMeta.run_sync(self.checkers, *args, **kwargs)
            except NotSatisfiedCheckerException as exc:
                raise ResponseException(str(exc), status=400) from exc
            return func(*args, **kwargs)

        return self._mark(wrapper)

    def _mark(self, wrapper: Callable[..., Any]) -> HandlerWrapper:
        _attach(wrapper, meta=self, check=self.check)
        return cast(HandlerWrapper, wrapper)

    def __iter__(self) -> Iterator[Any]:
        yield from (self.func, self.decorators, self.checkers)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HandlerMeta) and tuple(self) == tuple(other)

    def __hash__(self) -> int:
        return hash(self.func)

    def __repr__(self) -> str:
        return f"HandlerMeta({self.qualname}, decorators={sorted(map(repr, self.decorators))})"


class CheckDecorator:
    """Makes a function (sync or async, taking the request) a checker of a handler.

    Used as ``@handler.check(max_attempts=3, delay=0.5)`` in the class body, after the handler. A checker
    that is a method of the service is called bound to the service instance; a plain function is called
    with the request alone.

    Args:
        handler_meta: The metadata of the handler to guard.
        max_attempts: How many times the checker is tried before the request is refused.
        delay: Seconds (or a ``timedelta``) to wait between two attempts; kept in seconds.

    As in minos 0.7, ``tuple(decorator)`` is ``(handler_meta, max_attempts, delay)``, and two are equal when
    those are.

    Raises:
        ValueError: ``max_attempts`` is below 1 or ``delay`` is negative or not finite.
    """

    def __init__(
        self, handler_meta: HandlerMeta, max_attempts: int = 10, delay: float | timedelta = 0.1
    ) -> None:
        delay = _seconds(delay)
        _check_attempts(max_attempts, delay)
        self.handler_meta = handler_meta
        self.max_attempts = max_attempts
        self.delay = delay

    def __call__(self, func: _T) -> _T:
        """Records ``func`` as a checker of the handler and returns it unchanged.

        Raises:
            TypeError: ``func`` is a handler, or cannot take attributes.
        """
        inner = _unwrap(func)
        if isinstance(getattr(inner, "meta", None), HandlerMeta):
            raise TypeError(f"{_describe(inner)} is a handler; a handler cannot also be a checker")
        meta = CheckerMeta(inner, max_attempts=self.max_attempts, delay=self.delay)
        _attach(func, meta=meta)
        self.handler_meta.checkers.add(meta)
        return func

    def __iter__(self) -> Iterator[Any]:
        yield from (self.handler_meta, self.max_attempts, self.delay)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CheckDecorator) and tuple(self) == tuple(other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"CheckDecorator({self.handler_meta!r}, {self.max_attempts!r}, {self.delay!r})"


class Checkers(MutableSet["CheckerMeta"]):
    """The checkers of a handler: a set, as in minos 0.7 (``== set()`` holds for none), kept in the order
    they were added, which is the order they run in; ``checkers[0]`` is the first."""

    def __init__(self, checkers: Iterable[CheckerMeta] = ()) -> None:
        self._items: dict[CheckerMeta, None] = dict.fromkeys(checkers)

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __iter__(self) -> Iterator[CheckerMeta]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> CheckerMeta:
        return list(self._items)[index]

    def add(self, value: CheckerMeta) -> None:
        self._items[value] = None

    def discard(self, value: CheckerMeta) -> None:
        self._items.pop(value, None)

    def __repr__(self) -> str:
        return f"Checkers({list(self._items)!r})"


class CheckerMeta:
    """One checker of a handler, with its retry policy; stored on the checker function as ``meta``.

    Args:
        func: The checker function (for a ``staticmethod``, the function inside).
        max_attempts: How many times it is tried before the request is refused.
        delay: Seconds (or a ``timedelta``) to wait between two attempts; kept in seconds.

    Raises:
        ValueError: ``max_attempts`` is below 1 or ``delay`` is negative or not finite.
    """

    def __init__(
        self, func: Callable[..., Any], max_attempts: int = 10, delay: float | timedelta = 0.1
    ) -> None:
        delay = _seconds(delay)
        _check_attempts(max_attempts, delay)
        self.func = func
        self.max_attempts = max_attempts
        self.delay = delay

    @property
    def qualname(self) -> str:
        """The checker's qualified name, e.g. ``"UserService.is_admin"``."""
        return _describe(self.func)

    def bind(self, call: Callable[[Request], Any], handler_name: str) -> Callable[[Request], Awaitable[None]]:
        """Returns the coroutine function that runs the checker with its retries.

        Args:
            call: The checker as it must be called with the request (bound to its service if a method).
            handler_name: Named in the error, so the caller knows what did not run.

        Returns:
            An async callable that returns once the checker is satisfied and raises
            ``NotSatisfiedCheckerException`` (naming the checker) after the last failed attempt.
        """
        attempts, delay, name = self.max_attempts, self.delay, self.qualname

        async def run(request: Request) -> None:
            for attempt in range(1, attempts + 1):
                satisfied = call(request)
                if inspect.isawaitable(satisfied):
                    satisfied = await satisfied
                if satisfied:
                    return
                if attempt < attempts:
                    await asyncio.sleep(delay)
            raise NotSatisfiedCheckerException(
                f"checker {name!r} was not satisfied after {attempts} attempt(s) {delay} s apart, so handler "
                f"{handler_name!r} did not run; retry once its condition holds"
            )

        return run

    @property
    def wrapper(self) -> CheckerWrapper:
        """minos 0.7's callable checker: ``async_wrapper`` for a coroutine function, else ``sync_wrapper``."""
        return self.async_wrapper if inspect.iscoroutinefunction(self.func) else self.sync_wrapper

    @functools.cached_property
    def async_wrapper(self) -> CheckerWrapper:
        """The checker as a coroutine function that tries it up to ``max_attempts`` times, ``delay`` seconds
        apart, and returns whether it was satisfied (minos 0.7's wrapper)."""
        func, attempts, delay = self.func, self.max_attempts, self.delay

        @functools.wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> bool:
            for attempt in range(1, attempts + 1):
                satisfied = func(*args, **kwargs)
                if inspect.isawaitable(satisfied):
                    satisfied = await satisfied
                if satisfied:
                    return True
                if attempt < attempts:
                    await asyncio.sleep(delay)
            return False

        _attach(wrapper, meta=self)
        return cast(CheckerWrapper, wrapper)

    @functools.cached_property
    def sync_wrapper(self) -> CheckerWrapper:
        """As ``async_wrapper``, as a plain function that sleeps (blocking) between attempts.

        Raises:
            ValueError: the checker is a coroutine function.
        """
        func, attempts, delay = self.func, self.max_attempts, self.delay
        if inspect.iscoroutinefunction(func):
            raise ValueError(f"{self.qualname} is a coroutine function: use async_wrapper")

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> bool:
            for attempt in range(1, attempts + 1):
                if func(*args, **kwargs):
                    return True
                if attempt < attempts:
                    time.sleep(delay)
            return False

        _attach(wrapper, meta=self)
        return cast(CheckerWrapper, wrapper)

    @staticmethod
    async def run_async(checkers: Iterable[CheckerMeta], *args: Any, **kwargs: Any) -> None:
        """Runs ``checkers`` one after the other with the handler's arguments (minos 0.7's helper).

        Raises:
            NotSatisfiedCheckerException: one was not satisfied after its attempts (the rest do not run).
        """
        for checker in checkers:
            if not await checker.async_wrapper(*args, **kwargs):
                raise NotSatisfiedCheckerException(
                    f"checker {checker.qualname!r} was not satisfied after {checker.max_attempts} attempt(s)"
                )

    @staticmethod
    def run_sync(checkers: Iterable[CheckerMeta], *args: Any, **kwargs: Any) -> None:
        """As ``run_async``, for checkers that are plain functions.

        Raises:
            NotSatisfiedCheckerException: one was not satisfied after its attempts (the rest do not run).
            ValueError: one is a coroutine function.
        """
        for checker in checkers:
            if not checker.sync_wrapper(*args, **kwargs):
                raise NotSatisfiedCheckerException(
                    f"checker {checker.qualname!r} was not satisfied after {checker.max_attempts} attempt(s)"
                )

    def __iter__(self) -> Iterator[Any]:
        yield from (self.func, self.max_attempts, self.delay)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CheckerMeta) and tuple(self) == tuple(other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"CheckerMeta({self.qualname}, max_attempts={self.max_attempts!r}, delay={self.delay!r})"


def _unwrap(func: object) -> Callable[..., Any]:
    inner = func.__func__ if isinstance(func, staticmethod | classmethod) else func
    if not callable(inner):
        raise TypeError(f"only functions, staticmethods and classmethods can be decorated, got {func!r}")
    return inner


def _attach(func: object, **attributes: object) -> None:
    targets = [func, func.__func__] if isinstance(func, staticmethod | classmethod) else [func]
    for target in targets:
        for name, value in attributes.items():
            try:
                setattr(target, name, value)
            except (AttributeError, TypeError) as exc:
                raise TypeError(
                    f"cannot decorate {func!r}: it takes no attributes; decorate the function itself"
                ) from exc


def _describe(func: Callable[..., Any]) -> str:
    return getattr(func, "__qualname__", None) or repr(func)


def _seconds(delay: float | timedelta) -> float:
    # minos 0.7 took a timedelta as well as seconds; a float is kept as it is, so errors quote it.
    return delay.total_seconds() if isinstance(delay, timedelta) else delay


def _check_attempts(max_attempts: object, delay: object) -> None:
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise ValueError(f"max_attempts must be an int of at least 1, got {max_attempts!r}")
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not math.isfinite(delay) or delay < 0:
        raise ValueError(f"delay must be a finite number of seconds, 0 or more, got {delay!r}")
