"""The module ``celery -A worker.app worker`` names: the app of :mod:`worker.queue.app`."""

from worker.queue.app import app

__all__ = ["app"]
