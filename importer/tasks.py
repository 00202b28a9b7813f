"""Thin Celery tasks: each takes an id and calls one service. Safe to run twice."""

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from importer import services

_RELIABLE = {"acks_late": True, "reject_on_worker_lost": True}


@shared_task(**_RELIABLE)
def scheduler_tick_task():
    return services.scheduler_tick()


@shared_task(**_RELIABLE)
def setup_session_task(session_id):
    services.run_setup(session_id)


@shared_task(**_RELIABLE)
def enable_destination_session_task(session_id):
    services.run_enable_destination(session_id)


@shared_task(**_RELIABLE)
def copy_session_task(session_id, handoff=None):
    return services.run_copy(session_id, handoff=handoff)


@shared_task(**_RELIABLE)
def cutover_session_task(session_id):
    services.run_cutover(session_id)


@shared_task(**_RELIABLE)
def cancel_session_task(session_id):
    services.run_cancel(session_id)


@shared_task(**_RELIABLE)
def cleanup_session_task(session_id):
    services.run_cleanup(session_id)


@shared_task(**_RELIABLE)
def discover_remote_system_task(system_id):
    """Sent with a time limit of FERRY_DISCOVERY_SECONDS (services.request_discovery)."""
    try:
        services.run_discovery(system_id)
    except SoftTimeLimitExceeded:
        services.discovery_timed_out(system_id)


@shared_task(**_RELIABLE)
def check_remote_system_health_task(system_id):
    """Sent with a time limit a little over FERRY_NBD_CONNECT_TIMEOUT."""
    try:
        services.check_health(system_id)
    except SoftTimeLimitExceeded:
        pass  # the next tick's check tries again; the connect timeout normally ends it
