"""Celery workers: the app, the beat schedule and thin tasks over ``newsletter``."""

from workers.app import create_app

app = create_app()

__all__ = ["app"]
