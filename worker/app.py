"""The module ``celery -A worker.app worker`` names: the app built from the environment.

This is the one module that builds an app at import, for Celery's command line; everything
else calls :func:`worker.queue.app.create_app` with the settings it resolved.
"""

from worker.logs import configure_logging
from worker.queue.app import create_app
from worker.settings import Settings

settings = Settings.from_env()
configure_logging(settings.log_format, settings.log_level)
app = create_app(settings)

__all__ = ["app"]
