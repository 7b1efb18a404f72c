"""The web app: reader pages, the JSON API, health and metrics."""

from newsletter.web.app import create_app

__all__ = ["create_app"]
