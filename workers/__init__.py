"""Celery workers: the app, the beat schedule and thin tasks over ``newsletter``."""

from workers.app import create_app

app = create_app()
# Celery's "current app" is per thread: without this, a task queued from another thread
# (a web server's request threads) would go to Celery's default AMQP app and be lost.
app.set_default()

__all__ = ["app"]
