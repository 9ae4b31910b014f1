"""Periodic handlers: cron schedules, the tasks that follow them (an actor each), their scheduler and port."""

from ..actors.clock import Clock, Sleep
from ..enroute.cron import CronTab
from .clock import FakeClock
from .port import PeriodicPort
from .requests import ScheduledRequest, ScheduledRequestContent, ScheduledResponseException
from .scheduler import PERIODIC_KEYS, PeriodicTaskScheduler
from .task import PeriodicTask, PeriodicTaskActor

__all__ = [
    "PERIODIC_KEYS",
    "Clock",
    "CronTab",
    "FakeClock",
    "PeriodicPort",
    "PeriodicTask",
    "PeriodicTaskActor",
    "PeriodicTaskScheduler",
    "ScheduledRequest",
    "ScheduledRequestContent",
    "ScheduledResponseException",
    "Sleep",
]
