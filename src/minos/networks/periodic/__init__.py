"""Periodic handlers: cron schedules (and, in later issues, the tasks and port that run them)."""

from .cron import CronTab

__all__ = ["CronTab"]
