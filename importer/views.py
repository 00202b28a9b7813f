"""The operator dashboard. Pages render whole; htmx requests get only a named partial."""

import json

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Prefetch, Q
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from config.celery import app as celery_app
from importer import services, states
from importer.errors import ActionNotAllowed, FerryError
from importer.models import ImportSession

PAGE_SIZE = 50
SORTS = {"name": "name", "-name": "-name", "state": "state", "-state": "-state",
         "created": "created", "-created": "-created",
         "updated": "last_update_timestamp", "-updated": "-last_update_timestamp",
         "progress": "progress_percentage", "-progress": "-progress_percentage"}
_RELATED = ("remote_system", "source_volume", "source_group", "destination_volume",
            "destination_volume_group")


def _sessions():
    return ImportSession.objects.select_related(*_RELATED)


def _htmx_response(request, response):
    patch_vary_headers(response, ("HX-Request",))
    return response


@login_required
@require_GET
def session_list(request):
    chosen_states = [s for s in request.GET.getlist("state") if s in states.STATES]
    query = request.GET.get("q", "").strip()
    sort = request.GET.get("sort", "-created")
    sessions = _sessions().filter(parent_session__isnull=True).prefetch_related(
        Prefetch("members", queryset=_sessions().order_by("name")))
    if chosen_states:
        sessions = sessions.filter(state__in=chosen_states)
    if query:
        sessions = sessions.filter(Q(name__icontains=query) | Q(description__icontains=query)
                                   | Q(remote_system__name__icontains=query))
    sessions = sessions.order_by(SORTS.get(sort, "-created"), "-pk")
    page = Paginator(sessions, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"page": page, "chosen_states": chosen_states, "query": query, "sort": sort,
               "all_states": states.STATES.values(), "filters": _filters(request)}
    template = "importer/session_list.html"
    if request.htmx and not request.htmx.boosted:
        template += "#session-table"
    return _htmx_response(request, render(request, template, context))


def _filters(request) -> str:
    params = request.GET.copy()
    params.pop("page", None)
    return params.urlencode()


@login_required
@require_GET
def session_row(request, pk):
    return _render_row(request, pk)


def _render_row(request, pk):
    session = get_object_or_404(_sessions().prefetch_related(
        Prefetch("members", queryset=_sessions().order_by("name"))), pk=pk)
    return _htmx_response(request, render(
        request, "importer/session_list.html#session-row", {"session": session}))


@login_required
@require_GET
def session_detail(request, pk):
    return _render_detail(request, pk)


def _render_detail(request, pk):
    session = get_object_or_404(_sessions().select_related("parent_session"), pk=pk)
    events = session.events.select_related("actor").order_by("-timestamp", "-id")[:100]
    context = {"session": session, "events": events,
               "members": session.members.select_related(*_RELATED).order_by("name"),
               "rates": _rate_history(session),
               "mappings": _mappings(session)}
    template = "importer/session_detail.html"
    if request.htmx and not request.htmx.boosted:
        template += "#detail-panel"
    return _htmx_response(request, render(request, template, context))


def _rate_history(session) -> list[float]:
    """Bytes per second at each recorded checkpoint: the details panel's sparkline."""
    extents = list(session.copied_extents.order_by("created").values_list(
        "start", "end", "created"))
    rates, previous = [], None
    for start, end, created in extents:
        if previous is not None:
            seconds = (created - previous).total_seconds()
            if seconds > 0:
                rates.append((end - start) / seconds)
        previous = created
    return rates[-60:]


def _mappings(session):
    from importer.models import HostVolumeMapping

    volumes = ([session.destination_volume_id] if not session.is_group else
               list(session.members.values_list("destination_volume_id", flat=True)))
    return HostVolumeMapping.objects.filter(volume_id__in=[v for v in volumes if v]) \
        .select_related("host", "volume")


@login_required
@require_POST
def session_action(request, pk, action):
    """Run one action; answer with the row as it is now, and a toast saying what happened."""
    force = request.POST.get("force") == "true"
    if force and request.POST.get("confirm_name", "") != _name_of(pk):
        toast = ("danger", "Force cancel needs the session's name, typed exactly.")
    else:
        toast = _run_action(request, pk, action, force)
    if not ImportSession.objects.filter(pk=pk).exists():
        response = JsonResponse({})
    elif request.htmx.target == "detail-panel":
        response = _render_detail(request, pk)
    else:
        response = _render_row(request, pk)
    response["HX-Trigger"] = json.dumps({"ferry:toast": {"level": toast[0],
                                                         "message": toast[1]}})
    return response


def _name_of(pk) -> str:
    return ImportSession.objects.filter(pk=pk).values_list("name", flat=True).first() or ""


def _run_action(request, pk, action, force) -> tuple[str, str]:
    actor = services.Actor(request.user, _client_address(request))
    label = states.ACTION_LABELS.get(action, action)
    try:
        session = services.perform_action(pk, action, actor=actor, force=force)
    except ActionNotAllowed as refusal:
        current = states.info(refusal.state).label
        return "warning", (f"{label} was refused: the session is {current} now "
                           f"(someone may have changed it first). {refusal.message}")
    except FerryError as error:
        return "danger", error.message
    return "success", f"{label}: {session.name} is {session.state_info.label}."


def _client_address(request) -> str | None:
    return request.META.get("REMOTE_ADDR")


# --- Health ----------------------------------------------------------------------------------

def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:  # any failure means "not reachable": the report says which part
        return False


def _broker_ok() -> bool:
    try:
        with celery_app.connection_for_write() as broker:
            broker.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:
        return False


@never_cache
@require_GET
def healthz(request):
    checks = {"database": _database_ok(), "broker": _broker_ok()}
    healthy = all(checks.values())
    return JsonResponse({"status": "ok" if healthy else "unhealthy", **checks},
                        status=200 if healthy else 503)
