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


@register.filter
def eta(timestamp):
    """How long until ``timestamp``, to the second when it is close: "in 45 s"."""
    from django.utils import timezone

    if not timestamp:
        return "—"
    seconds = max(0, int((timestamp - timezone.now()).total_seconds()))
    if seconds < 90:
        return f"in {seconds} s"
    if seconds < 5400:
        return f"in {round(seconds / 60)} min"
    return f"in {seconds // 3600} h {seconds % 3600 // 60} min"


@register.filter
def state_label(value):
    from importer import states

    return states.info(value).label if value in states.STATES else (value or "—")
