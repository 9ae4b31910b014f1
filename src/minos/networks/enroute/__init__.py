"""Handlers as users declare them (``@enroute``), the routes routers collect from them, and dispatch.

Note: ``minos.networks.enroute`` as an attribute is the seed's decorator namespace (the ``enroute`` object),
which shadows this subpackage on the parent; import from it by its dotted name
(``from minos.networks.enroute import BrokerDispatcher``), which always works.
"""

from .collector import EnrouteCollector, EnrouteFactory, Middleware, import_object
from .decorators import (
    BrokerCommandEnrouteDecorator,
    BrokerEnroute,
    BrokerEnrouteDecorator,
    BrokerEventEnrouteDecorator,
    BrokerQueryEnrouteDecorator,
    Enroute,
    EnrouteDecorator,
    HttpEnrouteDecorator,
    PeriodicEnroute,
    PeriodicEnrouteDecorator,
    PeriodicEventEnrouteDecorator,
    RestCommandEnrouteDecorator,
    RestEnroute,
    RestEnrouteDecorator,
    RestQueryEnrouteDecorator,
    enroute,
)
from .dispatch import (
    HANDLING_CONTEXT_VAR,
    BrokerDispatcher,
    BrokerRequest,
    BrokerResponse,
    BrokerResponseException,
    message_log_fields,
)
from .handlers import (
    Action,
    CheckDecorator,
    Checker,
    CheckerMeta,
    CheckerWrapper,
    Handler,
    HandlerMeta,
    HandlerWrapper,
)
from .routers import BrokerRouter, HttpRouter, PeriodicRouter, RestHttpRouter, Router

__all__ = [
    "HANDLING_CONTEXT_VAR",
    "Action",
    "BrokerCommandEnrouteDecorator",
    "BrokerDispatcher",
    "BrokerEnroute",
    "BrokerEnrouteDecorator",
    "BrokerEventEnrouteDecorator",
    "BrokerQueryEnrouteDecorator",
    "BrokerRequest",
    "BrokerResponse",
    "BrokerResponseException",
    "BrokerRouter",
    "CheckDecorator",
    "Checker",
    "CheckerMeta",
    "CheckerWrapper",
    "Enroute",
    "EnrouteCollector",
    "EnrouteDecorator",
    "EnrouteFactory",
    "Handler",
    "HandlerMeta",
    "HandlerWrapper",
    "HttpEnrouteDecorator",
    "HttpRouter",
    "Middleware",
    "PeriodicEnroute",
    "PeriodicEnrouteDecorator",
    "PeriodicEventEnrouteDecorator",
    "PeriodicRouter",
    "RestCommandEnrouteDecorator",
    "RestEnroute",
    "RestEnrouteDecorator",
    "RestHttpRouter",
    "RestQueryEnrouteDecorator",
    "Router",
    "enroute",
    "import_object",
    "message_log_fields",
]
