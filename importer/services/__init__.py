"""The service layer: the only code that changes an import session's state.

Views, the API, the admin and tasks call these functions; one module per subject:
common (who acts), transitions (the sole writer of state), dispatch (the job outbox),
leases, inventory (systems, hosts, discovery), imports, actions, scheduler and jobs (the
worker's operations).
"""

from importer.services.actions import (
    delete_import,
    describe_import,
    modify_schedule,
    perform_action,
)
from importer.services.common import SYSTEM, Actor
from importer.services.imports import create_import
from importer.services.inventory import (
    check_health,
    create_remote_system,
    delete_host,
    delete_remote_system,
    discover_remote_system,
    discovery_timed_out,
    request_discovery,
    run_discovery,
    save_host,
    save_remote_system,
)
from importer.services.jobs import (
    ensure_destination_enabled,
    run_cancel,
    run_cleanup,
    run_copy,
    run_cutover,
    run_enable_destination,
    run_setup,
)
from importer.services.scheduler import scheduler_tick

__all__ = [
    "SYSTEM", "Actor", "check_health", "create_import", "create_remote_system", "delete_host",
    "delete_import", "delete_remote_system", "describe_import", "discover_remote_system",
    "discovery_timed_out", "request_discovery", "run_discovery",
    "ensure_destination_enabled", "modify_schedule", "perform_action", "run_cancel",
    "run_cleanup", "run_copy", "run_cutover", "run_enable_destination", "run_setup",
    "save_host", "save_remote_system", "scheduler_tick",
]
