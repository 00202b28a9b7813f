from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ImporterConfig(AppConfig):
    name = "importer"
    verbose_name = "Imports"

    def ready(self):
        from celery.signals import after_setup_logger, after_setup_task_logger

        from importer import audit  # noqa: F401  (connects its signal receivers)
        from importer.api import tokens  # noqa: F401  (revokes tokens on password change)
        from importer.roles import sync_roles
        from importer.validation import escape_worker_logs

        after_setup_logger.connect(escape_worker_logs, weak=False)
        after_setup_task_logger.connect(escape_worker_logs, weak=False)

        post_migrate.connect(sync_roles, sender=self)
