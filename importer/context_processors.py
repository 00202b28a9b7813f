"""The top bar's counts, on every page."""

from django.db.models import Count, Q
from django.urls import reverse
from django.utils.functional import SimpleLazyObject
from django.utils.http import urlencode

from importer import states
from importer.models import ImportSession

# The top bar's three counts, each with the list filter that shows those imports.
_COUNTED = {"active": sorted(states.ACTIVE), "waiting": sorted(states.WAITING),
            "ready": [states.State.READY_FOR_CUTOVER], "failed": sorted(states.NEEDS_ATTENTION)}


def top_bar(request):
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    # Lazy: a row poll renders no top bar, so it must not pay for this query.
    return {"import_counts": SimpleLazyObject(_counts),
            "import_count_links": SimpleLazyObject(_links)}


def _counts() -> dict:
    return ImportSession.objects.filter(parent_session__isnull=True).aggregate(
        **{name: Count("pk", filter=Q(state__in=counted)) for name, counted in _COUNTED.items()})


def _links() -> dict:
    listing = reverse("importer:session-list")
    return {name: f"{listing}?{urlencode({'state': counted}, doseq=True)}"
            for name, counted in _COUNTED.items()}
