"""Template helpers of the monitoring pages: the bell's count and job durations."""

from datetime import timedelta

from django import template

from importer.services import alerts

register = template.Library()


@register.simple_tag
def unacknowledged_alert_count() -> int:
    return alerts.unacknowledged().count()


@register.filter
def human_duration(value: timedelta | None) -> str:
    """A job's duration: "850 ms", "42 s", "3 min 05 s", "2 h 07 min"."""
    if value is None:
        return ""
    seconds = value.total_seconds()
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
