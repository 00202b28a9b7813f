"""Ferry's Django project. The Celery app loads with Django so tasks enqueue from anywhere."""

from config.celery import app as celery_app

__all__ = ("celery_app",)
