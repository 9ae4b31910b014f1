"""Periodic handlers: cron schedules, the tasks that follow them (an actor each), their scheduler and port."""

from .clock import FakeClock
from .cron import Clock, CronTab, Sleep
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
