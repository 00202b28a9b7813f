"""The top bar's counts, on every page."""

from django.db.models import Count, Q
from django.utils.functional import SimpleLazyObject

from importer import states
from importer.models import ImportSession

_ACTIVE = [s for s, info in states.STATES.items() if info.is_active]
_FAILED = [states.State.FAILED, states.State.CANCEL_REQUIRED, states.State.CANCEL_FAILED,
           states.State.CLEANUP_REQUIRED, states.State.CLEANUP_FAILED,
           states.State.IMPORT_CUTOVER_INCOMPLETE]


def top_bar(request):
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    # Lazy: a row poll renders no top bar, so it must not pay for this query.
    return {"import_counts": SimpleLazyObject(_counts)}


def _counts() -> dict:
    return ImportSession.objects.filter(parent_session__isnull=True).aggregate(
        active=Count("pk", filter=Q(state__in=_ACTIVE)),
        ready=Count("pk", filter=Q(state=states.State.READY_FOR_CUTOVER)),
        failed=Count("pk", filter=Q(state__in=_FAILED)))
