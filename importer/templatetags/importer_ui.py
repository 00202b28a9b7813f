"""Template tags for the dashboard: state badges, the Import Actions menu, numbers."""

from django import template

from importer import ui

register = template.Library()


@register.inclusion_tag("importer/components/state_badge.html")
def status_badge(session):
    return {"info": session.state_info}


@register.inclusion_tag("importer/components/action_menu.html", takes_context=True)
def action_buttons(context, session, target=None):
    user = context["request"].user
    # A stable id per menu: htmx gives the focus back to it after a poll swaps the row.
    toggle_id = f"actions-{session.pk}" if target is None else f"{target[1:]}-actions"
    return {"session": session, "entries": ui.action_menu(session, user),
            "forced": ui.forced_entries(session, user),
            "target": target or f"#session-{session.pk}", "toggle_id": toggle_id}


@register.filter
def human_bytes(value):
    return ui.human_bytes(value)


@register.filter
def human_rate(value):
    return f"{ui.human_bytes(value)}/s" if value else "—"


@register.filter
def sparkline_points(rates):
    """SVG polyline points for a 0..len × 0..20 viewBox, highest rate at the top."""
    peak = max(rates) or 1
    return " ".join(f"{index + 0.5:.1f},{20 - 18 * rate / peak:.1f}"
                    for index, rate in enumerate(rates))


ESTIMATING = "estimating…"


@register.filter
def eta(timestamp):
    """How long until ``timestamp``, to the second when it is close: "in 45 s". None, or a
    time already past, is no estimate: "estimating…", never "in 0 s"."""
    from django.utils import timezone

    if not timestamp:
        return ESTIMATING
    seconds = int((timestamp - timezone.now()).total_seconds())
    if seconds <= 0:
        return ESTIMATING
    if seconds < 90:
        return f"in {seconds} s"
    if seconds < 5400:
        return f"in {round(seconds / 60)} min"
    return f"in {seconds // 3600} h {seconds % 3600 // 60} min"


@register.filter
def state_label(value):
    from importer import states

    return states.info(value).label if value in states.STATES else (value or "—")


@register.filter
def from_unix(seconds):
    """A chart point's Unix time as a datetime, for the |date filter."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, tz=UTC)


@register.filter
def share_of(count, most):
    """A bar's width in percent of the largest one."""
    return round(100 * count / most) if most else 0


@register.inclusion_tag("importer/components/session_rate_card.html")
def session_rate_card(session):
    """The details page's rate chart, with its first points as text."""
    from importer.services import samples

    return {"session": session, "rate_series": samples.session_series(session),
            "rate_live": not session.state_info.is_terminal}
@register.filter
def current_rate(session):
    """The rate shown now: only while the session copies (none once paused or ended)."""
    return human_rate(session.current_transfer_rate) if session.is_copying else "—"


@register.filter
def session_eta(session):
    return eta(session.estimated_completion_timestamp) if session.is_copying else "—"


@register.filter
def eta_clock(session):
    """The estimated time of day, when there is an estimate still ahead; else ""."""
    from django.utils import timezone
    from django.utils.dateformat import format as date_format

    timestamp = session.estimated_completion_timestamp
    if not session.is_copying or not timestamp or timestamp <= timezone.now():
        return ""
    return date_format(timezone.localtime(timestamp), "H:i:s")


def ago(timestamp, now=None) -> str:
    """How long ago, the way people say it: "just now", "45 s ago", "3 min ago"."""
    from django.utils import timezone

    seconds = int(((now or timezone.now()) - timestamp).total_seconds())
    if seconds < 5:
        return "just now"
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min ago"
    days = seconds // 86400
    return f"{days} day{'s' if days > 1 else ''} ago"


@register.simple_tag
def time_ago(timestamp):
    """A relative time with the absolute one on hover (title) and for machines (datetime)."""
    from django.utils import timezone
    from django.utils.dateformat import format as date_format
    from django.utils.html import format_html

    if not timestamp:
        return "—"
    local = timezone.localtime(timestamp)
    return format_html('<time datetime="{}" title="{}">{}</time>', local.isoformat(),
                       date_format(local, "Y-m-d H:i:s T"), ago(timestamp))


@register.inclusion_tag("importer/components/confirmed_delete.html")
def confirmed_delete(kind, record, url, disabled_reason=""):
    """A Delete button that opens the confirmation dialog before its form is posted."""
    texts = ui.INVENTORY_DELETES[kind]
    return {"url": url, "name": record.name, "disabled_reason": disabled_reason,
            **texts, "note": texts["note"].format(name=record.name)}
