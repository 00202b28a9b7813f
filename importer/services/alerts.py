"""Alerts: raised when a session enters a state that states.py marks with a severity, a
remote system becomes unreachable or a storage node goes offline; cleared when that ends;
acknowledged by operators (audited). New alerts are e-mailed to FERRY_ALERT_EMAILS once
their transaction commits; mail that cannot be sent never undoes what raised the alert."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from importer import roles, states
from importer.models import (
    Alert,
    AlertResource,
    AlertState,
    ImportSession,
    NodeStatus,
    RemoteSystem,
    StorageNode,
)
from importer.services.common import Actor, audit_change

log = logging.getLogger(__name__)

SESSION_STATE_PREFIX = "session_state_"
SYSTEM_UNREACHABLE = "remote_system_unreachable"
NODE_OFFLINE = "storage_node_offline"
NODE_UNHEALTHY = "storage_node_unhealthy"
ACKNOWLEDGE_LIMIT = 500


def unacknowledged():
    """What the top bar's bell counts: active alerts nobody has acknowledged."""
    return Alert.objects.filter(state=AlertState.ACTIVE, is_acknowledged=False)


def raise_alert(resource_type: str, resource_id, resource_name: str, event_code: str,
                severity: str, description: str) -> Alert:
    """Raise an alert, or bring the active one for the same resource and code up to date
    (a persisting condition is one alert, not one per check)."""
    now = timezone.now()
    active = Alert.objects.filter(resource_type=resource_type, resource_id=str(resource_id),
                                  event_code=event_code, state=AlertState.ACTIVE)
    changes = {"severity": severity, "description_l10n": description,
               "resource_name": resource_name[:255], "last_update_timestamp": now}
    if active.update(**changes):
        return active.get()
    try:
        with transaction.atomic():  # a savepoint: if another raise of it won, update that
            alert = Alert.objects.create(
                resource_type=resource_type, resource_id=str(resource_id),
                event_code=event_code, generated_timestamp=now, **changes)
    except IntegrityError:
        active.update(**changes)
        return active.get()
    log.warning("Alert %s (%s) on %s: %s", event_code, severity, resource_name, description)
    if settings.FERRY_ALERT_EMAILS:
        transaction.on_commit(partial(_mail, alert.pk))
    return alert


def clear_alerts(resource_type: str, resource_id, *, codes=None, keep: str = "") -> int:
    """Clear the resource's active alerts (those with ``codes``, if given), but ``keep``."""
    active = Alert.objects.filter(resource_type=resource_type, resource_id=str(resource_id),
                                  state=AlertState.ACTIVE)
    if codes is not None:
        active = active.filter(event_code__in=list(codes))
    if keep:
        active = active.exclude(event_code=keep)
    now = timezone.now()
    return active.update(state=AlertState.CLEARED, cleared_timestamp=now,
                         last_update_timestamp=now)


# --- Import sessions -------------------------------------------------------------------------

def session_entered(session: ImportSession, state: str) -> None:
    """Called by services.transitions in the transaction that moved the session: the alert
    of the state it entered (states.py declares which), and the one of the state it left
    cleared. A group member is represented by its group: its own states raise nothing."""
    if session.parent_session_id:
        return
    severity = states.info(state).alert
    code = f"{SESSION_STATE_PREFIX}{str(state).lower()}" if severity else ""
    clear_alerts(AlertResource.IMPORT_SESSION, session.pk, keep=code,
                 codes=_session_state_codes())
    if severity:
        raise_alert(AlertResource.IMPORT_SESSION, session.pk, session.name, code, severity,
                    _session_description(session, state, severity))


def session_deleted(session_id) -> None:
    clear_alerts(AlertResource.IMPORT_SESSION, session_id)


def _session_state_codes() -> list[str]:
    return [f"{SESSION_STATE_PREFIX}{state.lower()}" for state, state_info in
            states.STATES.items() if state_info.alert]


def _session_description(session: ImportSession, state: str, severity: str) -> str:
    state_info = states.info(state)
    text = f"Import session {session.name} is {state_info.label}"
    if severity == states.Severity.INFO:
        text += " and needs action"
    if session.error_message:
        text += f": {session.error_message}"
    sentences = [text if text.endswith(".") else f"{text}."]
    if state_info.hint:
        sentences.append(f"Next: {state_info.hint}")
    return " ".join(sentences)


# --- Remote systems and storage nodes --------------------------------------------------------

def system_unreachable(system: RemoteSystem, message: str) -> None:
    raise_alert(AlertResource.REMOTE_SYSTEM, system.pk, system.name, SYSTEM_UNREACHABLE,
                states.Severity.MAJOR, f"Remote system {system.name} is unreachable: {message}")


def system_reachable(system: RemoteSystem) -> None:
    clear_alerts(AlertResource.REMOTE_SYSTEM, system.pk, codes=[SYSTEM_UNREACHABLE])


def node_status_changed(node: StorageNode, status: str, message: str) -> None:
    """A node's own report (or its worker's goodbye): alert for what is wrong, clear what
    is not any more."""
    if status == NodeStatus.HEALTHY:
        clear_alerts(AlertResource.STORAGE_NODE, node.pk, codes=[NODE_OFFLINE, NODE_UNHEALTHY])
        return
    code = NODE_OFFLINE if status == NodeStatus.OFFLINE else NODE_UNHEALTHY
    clear_alerts(AlertResource.STORAGE_NODE, node.pk, codes=[NODE_OFFLINE, NODE_UNHEALTHY],
                 keep=code)
    raise_alert(AlertResource.STORAGE_NODE, node.pk, node.name, code, states.Severity.MAJOR,
                f"Storage node {node.name} is {status}: {message or 'no reason given'}. "
                "Its imports wait until it is back.")


def check_silent_nodes(now: datetime) -> int:
    """The scheduler's part: a node whose worker stopped beating is offline, though nothing
    reported it (a killed worker says nothing)."""
    silent_since = now - timedelta(seconds=settings.FERRY_NODE_OFFLINE_SECONDS)
    silent = StorageNode.objects.exclude(status=NodeStatus.OFFLINE).filter(
        last_heartbeat__lt=silent_since)
    for node in silent:
        node_status_changed(node, NodeStatus.OFFLINE, node.health_message)
    return len(silent)


# --- Acknowledging -------------------------------------------------------------------------

def acknowledge_alerts(alert_ids, *, actor: Actor) -> int:
    """Acknowledge alerts (an operator has seen them); each one is audited. Returns how
    many were acknowledged now; ones already acknowledged, or unknown ids, are skipped."""
    actor.require(roles.OPERATE, "acknowledge alerts")
    ids = [str(alert_id) for alert_id in alert_ids][:ACKNOWLEDGE_LIMIT]
    now = timezone.now()
    with transaction.atomic():
        alerts = list(Alert.objects.select_for_update().filter(
            pk__in=_valid_uuids(ids), is_acknowledged=False))
        Alert.objects.filter(pk__in=[alert.pk for alert in alerts]).update(
            is_acknowledged=True, acknowledged_timestamp=now, acknowledged_by=actor.name)
        for alert in alerts:
            audit_change("acknowledge_alert", actor, f"alert on {alert.resource_name}"[:255],
                         {"alert": str(alert.pk), "event_code": alert.event_code,
                          "severity": alert.severity})
    return len(alerts)


def _valid_uuids(ids: list[str]) -> list[str]:
    valid = []
    for value in ids:
        try:
            valid.append(str(uuid.UUID(value)))
        except ValueError:
            continue
    return valid


# --- Mail --------------------------------------------------------------------------------

def _mail(alert_id) -> None:
    """After commit: tell the recipients. A mail server that fails is logged, not raised."""
    alert = Alert.objects.filter(pk=alert_id).first()
    if alert is None or not alert.is_active:
        return  # cleared in the transaction that raised it (an automatic cutover)
    try:
        raised = alert.generated_timestamp.strftime("%Y-%m-%d %H:%M:%S %Z")
        send_mail(f"[Ferry] {alert.severity}: {alert.resource_name}",
                  f"{alert.description_l10n}\n\nRaised {raised}. Acknowledge it on Ferry's "
                  "Alerts page.", settings.DEFAULT_FROM_EMAIL, settings.FERRY_ALERT_EMAILS)
    except Exception:  # any mail failure: the alert stands, the transition stands
        log.exception("Could not e-mail alert %s to %s", alert_id, settings.FERRY_ALERT_EMAILS)
