"""The operator dashboard. Pages render whole; htmx requests get only a named partial."""

import csv
import itertools

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import connection, transaction
from django.db.models import Count, Max, Prefetch, Q, Sum
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect, reswap, trigger_client_event

from config.celery import app as celery_app
from importer import audit, filters, forms, roles, services, states, ui
from importer.errors import ActionNotAllowed, FerryError, ValidationError
from importer.models import (
    Host,
    ImportEvent,
    ImportSession,
    RemoteSystem,
    StorageNode,
    SystemStatus,
)
from importer.services import source_access
from importer.services.frontends import with_host_rates
from importer.services.nodes import available_bytes, reserved_bytes
from importer.states import UNFINISHED

PAGE_SIZE = 50
SORTS = {"name": "name", "-name": "-name", "state": "state", "-state": "-state",
         "created": "created", "-created": "-created",
         "updated": "last_update_timestamp", "-updated": "-last_update_timestamp",
         "progress": "progress_percentage", "-progress": "-progress_percentage"}
# The Sort select of the Imports page (the columns no longer sort: they must fit 1280 px).
SORT_CHOICES = [("-created", "Newest first"), ("created", "Oldest first"),
                ("name", "Name A–Z"), ("-name", "Name Z–A"), ("state", "State"),
                ("-progress", "Most progress"), ("progress", "Least progress"),
                ("-updated", "Recently updated")]
_RELATED = ("remote_system", "source_volume", "source_group", "destination_volume",
            "destination_volume_group", "storage_node")


def _sessions():
    return with_host_rates(ImportSession.objects.select_related(*_RELATED))


def _htmx_response(request, response):
    patch_vary_headers(response, ("HX-Request",))
    return response


@login_required
@require_GET
def session_list(request):
    sort = request.GET.get("sort", "-created")
    sort = sort if sort in SORTS else "-created"
    # Members are rendered for expanded groups only (they ask for them): the page stays
    # 50 rows however large the groups are. The API's filters, so both agree.
    found = filters.ImportSessionFilter(
        request.GET, queryset=_sessions().filter(parent_session__isnull=True))
    sessions = found.qs.order_by(SORTS.get(sort, "-created"), "-pk")
    page = Paginator(sessions, PAGE_SIZE).get_page(request.GET.get("page"))
    chosen = found.form.cleaned_data
    context = {"page": page, "chosen_states": chosen.get("state") or [],
               "query": chosen.get("q") or "", "sort": sort,
               "all_states": states.STATES.values(), "filters": _filters(request),
               "nodes": list(StorageNode.objects.values_list("pk", "name")),
               "chosen_node": chosen.get("storage_node"),
               "bulk_menu": ui.bulk_menu(), "sort_choices": SORT_CHOICES,
               "session_set_token": _session_set_token(),
               "has_systems": RemoteSystem.objects.exists}  # asked only by an empty list
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
    with_members = request.GET.get("members") == "true"
    sessions = _sessions()
    if with_members:
        sessions = sessions.prefetch_related(
            Prefetch("members", queryset=_sessions().order_by("name")))
    session = get_object_or_404(sessions, pk=pk)
    return _htmx_response(request, render(
        request, "importer/session_list.html#session-row",
        {"session": session, "with_members": with_members and session.is_group}))


@login_required
@require_GET
def session_summary(request, pk):
    """The details slide-out of the Imports page: the details page's summary partial."""
    session = get_object_or_404(_sessions(), pk=pk)
    events = session.events.select_related("actor").order_by("-timestamp", "-id")[:20]
    return _htmx_response(request, render(
        request, "importer/session_detail.html#session-summary",
        {"session": session, "events": events}))


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
               "mappings": _mappings(session),
               "source_access": source_access.describe(session),
               "manual_step": source_access.manual_step(session),
               "frontends": ui.host_access_panels(session, request.user),
               "host_step": ui.cancel_host_step(session),
               "delete_call": ui.delete_call(session, request),
               "may_reschedule": states.Action.MODIFY_SCHEDULE in session.allowed_actions
               and request.user.has_perm(roles.OPERATE)}
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
        label = states.ACTIONS[states.Action(action)].force_label if action in \
            states.FORCEABLE_ACTIONS else action
        toast = ("danger", f"{label} needs the session's name, typed exactly.")
    else:
        confirmed = request.POST.get("source_unmapped_confirmed") == "true"
        toast = _run_action(request, pk, action, force, source_unmapped_confirmed=confirmed)
    if not ImportSession.objects.filter(pk=pk).exists():  # deleted meanwhile: drop its row
        response = reswap(HttpResponse(), "delete")
    elif request.htmx.target == "detail-panel":
        response = _render_detail(request, pk)
    else:
        response = _render_row(request, pk)  # members come back on the next poll
    return trigger_client_event(response, "ferry:toast",
                                {"level": toast[0], "message": toast[1]})


@login_required
@require_POST
def session_schedule(request, pk):
    """Change a Scheduled import's start time (services.modify_schedule, audited)."""
    session = get_object_or_404(ImportSession, pk=pk)
    form = forms.ScheduleForm(request.POST)
    if not form.is_valid():
        problems = " ".join(p for errors in form.errors.values() for p in errors)
        messages.error(request, f"The schedule was not changed: {problems}")
    else:
        try:
            services.modify_schedule(pk, form.cleaned_data["scheduled_at"],
                                     actor=services.Actor.of(request))
        except FerryError as error:
            messages.error(request, f"The schedule was not changed: {error.message}")
        else:
            when = form.cleaned_data["scheduled_at"].strftime("%Y-%m-%d %H:%M")
            messages.success(request, f"{session.name} now starts at {when} UTC.")
    return redirect("importer:session-detail", pk=pk)


BULK_LIMIT = 200


def _session_set_token() -> str:
    """What changes when an import is created or deleted anywhere (API, another operator):
    one aggregate query, cheap enough to poll."""
    found = ImportSession.objects.filter(parent_session__isnull=True).aggregate(
        count=Count("pk"), top=Max("pk"), ids=Sum("pk"))
    return f"{found['count']}-{found['top'] or 0}-{found['ids'] or 0}"


@login_required
@require_GET
def session_changes(request):
    """The open list's watcher: asks the page to refresh its table when the set of
    imports is not the one it shows (rows poll for their own changes)."""
    response = HttpResponse(status=204)
    if request.GET.get("token") != _session_set_token():
        trigger_client_event(response, "ferry:refresh-table")
    return _htmx_response(request, response)


@login_required
@require_GET
def import_counts(request):
    """The top bar's counts, polled so they follow the imports."""
    return _htmx_response(request, render(request, "importer/components/import_counts.html"))


@login_required
@require_POST
def bulk_action(request, action):
    """Run one action on each selected session, each on its own; report row by row."""
    ids = [int(i) for i in request.POST.get("ids", "").split(",") if i.strip().isdigit()]
    results = [_bulk_one(request, pk, action) for pk in ids[:BULK_LIMIT]]
    done = sum(1 for result in results if result["level"] == "success")
    label = states.ACTION_LABELS.get(action, action)
    if not results:
        toast = ("warning", "Select at least one import first.")
    else:
        toast = ("success" if done == len(results) else "warning",
                 f"{label}: {done} of {len(results)} succeeded.")
    response = render(request, "importer/session_list.html#bulk-results",
                      {"results": results, "label": label})
    trigger_client_event(response, "ferry:toast", {"level": toast[0], "message": toast[1]})
    trigger_client_event(response, "ferry:refresh-table")
    return _htmx_response(request, response)


def _bulk_one(request, pk, action) -> dict:
    name = _name_of(pk) or f"#{pk}"
    level, message = _run_action(request, pk, action, force=False)
    return {"name": name, "level": level, "message": message}


def _name_of(pk) -> str:
    return ImportSession.objects.filter(pk=pk).values_list("name", flat=True).first() or ""


def _run_action(request, pk, action, force, **options) -> tuple[str, str]:
    actor = services.Actor.of(request)
    label = states.ACTION_LABELS.get(action, action)
    if force and action in states.FORCEABLE_ACTIONS:
        label = states.ACTIONS[states.Action(action)].force_label
    try:
        session = services.perform_action(pk, action, actor=actor, force=force, **options)
    except ActionNotAllowed as refusal:
        current = states.info(refusal.state).label
        return "warning", (f"{label} was refused: the session is {current} now "
                           f"(someone may have changed it first). {refusal.message}")
    except FerryError as error:
        return "danger", error.message
    return "success", f"{label}: {session.name} is {session.state_info.label}."


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


# --- Create import wizard --------------------------------------------------------------------

_FIELD_STEPS = {"name": "options", "source_resource_id": "resources", "host_ids": "hosts",
                "scheduled_timestamp": "options", "throttle_bytes_per_second": "options",
                "storage_node": "options", "description": "options",
                "volume_group_name": "options", "consistency_group_member_host_ids": "hosts"}
_FORM_FIELDS = {"source_resource_id": "resources", "host_ids": "hosts",
                "scheduled_timestamp": "scheduled_at",
                "throttle_bytes_per_second": "throttle_mbps"}
# The service's errors about one group, shown next to that group's own fields.
_GROUP_FORM_FIELDS = {"volume_group_name": "volume_group_name_{group}",
                      "consistency_group_member_host_ids": "hosts_mode_{group}"}


@login_required
def import_create(request):
    if not request.user.has_perm(roles.OPERATE):
        return _forbidden(request, "Your role can view imports but not create them.")
    if request.method != "POST":
        return _wizard(request, forms.ImportWizardForm(step="system"))
    step = request.POST.get("step", "system")
    step = step if step in forms.WIZARD_STEPS else "system"
    position = forms.WIZARD_STEPS.index(step)
    if request.POST.get("go") == "back" and position > 0:
        return _wizard(request, _step_form(request, forms.WIZARD_STEPS[position - 1]))
    form = forms.ImportWizardForm(request.POST, step=step)
    if not form.is_valid():
        return _wizard(request, _at_first_error(request, form))
    if step != "review":
        return _wizard(request, _step_form(request, forms.WIZARD_STEPS[position + 1]))
    return _create_imports(request, form)


def _at_first_error(request, form):
    """The form again at the earliest step with an error (a host deleted since the hosts
    step is told there, not at Review)."""
    steps = [forms.step_of(name) for name in form.errors if name != "__all__"]
    first = min(steps, key=forms.WIZARD_STEPS.index, default=form.step)
    if first == form.step:
        return form
    earlier = forms.ImportWizardForm(request.POST, step=first)
    earlier.is_valid()
    return earlier


def _step_form(request, step):
    """A step shown fresh: filled with the answers so far, no errors for what is to come."""
    return forms.ImportWizardForm(step=step, initial=forms.answers(request.POST),
                                  system_id=request.POST.get("remote_system"))


def _create_imports(request, form):
    data = form.cleaned_data
    rows = {row["id"]: row["name"] for row in forms.resource_rows(data["remote_system"].pk)}
    resources = data["resources"]
    groups = {str(group.pk): group for group in form.groups}
    actor = services.Actor.of(request)
    created, rid = [], None
    try:
        with transaction.atomic():  # several resources: all are created, or none
            for rid in resources:
                group = groups.get(rid)
                created.append(services.create_import(
                    name=data["name"] if len(resources) == 1 else f"{data['name']} {rows[rid]}",
                    description=data["description"],
                    source_resource_id=rid, remote_system_id=data["remote_system"].pk,
                    host_ids=[host.pk for host in data["hosts"]],
                    consistency_group_member_host_ids=(
                        form.member_host_ids(group) if group else []),
                    volume_group_name=data[f"volume_group_name_{rid}"] if group else None,
                    automatic_cutover=data["automatic_cutover"],
                    scheduled_timestamp=form.scheduled_timestamp,
                    throttle_bytes_per_second=form.throttle_bytes_per_second,
                    storage_node_id=data["storage_node"].pk if data["storage_node"] else None,
                    actor=actor))
    except ValidationError as error:
        return _wizard(request, _with_service_errors(request, error, rid if rid in groups
                                                     else None))
    messages.success(request, f"Created {len(created)} import{'s' if len(created) > 1 else ''}: "
                              f"{', '.join(s.name for s in created)}.")
    target = reverse("importer:session-list")
    if request.htmx:
        return HttpResponseClientRedirect(target)
    return redirect(target)


def _with_service_errors(request, error, group_id):
    """The wizard at the step of the service's first error, each next to its field."""
    first = next(iter(error.field_errors))
    retry = forms.ImportWizardForm(request.POST, step=_FIELD_STEPS.get(first, "review"))
    retry.is_valid()
    for field, messages_ in error.field_errors.items():
        if group_id and field in _GROUP_FORM_FIELDS:
            target = _GROUP_FORM_FIELDS[field].format(group=group_id)
        elif field in _FIELD_STEPS or field in retry.fields:
            target = _FORM_FIELDS.get(field, field)
        else:
            target = None
        retry.add_error(target if target in retry.fields else None, messages_)
    return retry


def _wizard(request, form):
    carried = [(name, value) for name in form.fields if forms.step_of(name) != form.step
               for value in request.POST.getlist(name)]
    context = {"form": form, "step": form.step, "steps": forms.WIZARD_STEPS,
               "step_number": forms.WIZARD_STEPS.index(form.step) + 1, "carried": carried,
               "rows": forms.resource_rows(form.system_id), "review": _review(request, form),
               "chosen": set(request.POST.getlist("resources"))}
    template = "importer/import_wizard.html"
    if request.htmx:
        template += "#wizard"
    return _htmx_response(request, render(request, template, context))


def _review(request, form) -> dict:
    if form.step != "review":
        return {}
    data = request.POST
    system = RemoteSystem.objects.filter(pk=data.get("remote_system") or 0).first()
    names = dict(forms.resource_choices(data.get("remote_system")))
    hosts = Host.objects.filter(pk__in=[h for h in data.getlist("hosts") if h.isdigit()])
    later = data.get("schedule") == "later"
    node_id = data.get("storage_node", "")
    node = StorageNode.objects.filter(pk=node_id).first() if node_id.isdigit() else None
    return {"storage_node": node.name if node else "automatic: the node with the most room",
            "system": system, "resources": [names.get(r, r) for r in data.getlist("resources")],
            "hosts": [host.name for host in hosts], "name": data.get("name", ""),
            "description": data.get("description", ""), "groups": _review_groups(data, form),
            "start": f"{data.get('scheduled_at')} UTC" if later else "now",
            "automatic_cutover": bool(data.get("automatic_cutover")),
            "throttle": f"{data['throttle_mbps']} MB/s" if data.get("throttle_mbps") else "none"}


def _review_groups(data, form) -> list[dict]:
    """Each chosen group: its volume group's name and each member volume's hosts."""
    names = dict(Host.objects.values_list("pk", "name"))

    def host_names(field):
        return [names[int(h)] for h in data.getlist(field) if h.isdigit() and int(h) in names]

    review = []
    for group in form.groups:
        each = data.get(f"hosts_mode_{group.pk}") == "each"
        members = [(volume.name, host_names(f"member_hosts_{volume.pk}" if each else "hosts"))
                   for volume in group.volumes.all()]
        review.append({"name": group.name, "members": members, "per_member": each,
                       "volume_group": data.get(f"volume_group_name_{group.pk}", "")})
    return review


def _forbidden(request, message):
    audit.record_denial(request, code="permission_denied", message=message)
    return render(request, "importer/forbidden.html", {"message": message}, status=403)


# --- Remote systems and hosts ----------------------------------------------------------------

@login_required
@require_GET
def system_list(request):
    systems = RemoteSystem.objects.annotate(
        volume_count=Count("source_volumes", distinct=True),
        session_count=Count("import_sessions", distinct=True)).order_by("name")
    return render(request, "importer/system_list.html", {
        "systems": systems, "can_manage": request.user.has_perm(roles.MANAGE_SYSTEMS),
        "can_discover": request.user.has_perm(roles.OPERATE),
        "discovering": any(s.status == SystemStatus.DISCOVERING for s in systems)})


@login_required
def system_edit(request, pk=None):
    if not request.user.has_perm(roles.MANAGE_SYSTEMS):
        return _forbidden(request, "Only admins add or change remote systems.")
    system = get_object_or_404(RemoteSystem, pk=pk) if pk else None
    initial = forms.RemoteSystemForm.initial_for(system) if system else {}
    form = forms.RemoteSystemForm(request.POST or None, initial=initial,
                                  editing=system is not None)
    if request.method == "POST" and form.is_valid():
        actor = services.Actor.of(request)
        driver_type = form.cleaned_data["driver_type"]
        try:
            saved = services.save_remote_system(
                system.pk if system else None, name=form.cleaned_data["name"],
                driver_type=driver_type, driver_settings=form.driver_settings(),
                description=form.cleaned_data["description"], actor=actor)
        except ValidationError as error:
            # The driver's message names the setting; it shows under the main one.
            main = forms.RemoteSystemForm.DRIVER_FIELDS[forms.DriverType(driver_type)][0]
            for field, problems in error.field_errors.items():
                form.add_error(main if field == "driver_settings" else
                               field if field in form.fields else None, problems)
        else:
            _discover(request, saved)
            return redirect("importer:system-list")
    driver_fields = {str(kind): names for kind, names in form.DRIVER_FIELDS.items()}
    return render(request, "importer/system_form.html",
                  {"form": form, "system": system, "driver_fields": driver_fields})


@login_required
@require_POST
def system_delete(request, pk):
    actor = services.Actor.of(request)
    try:
        services.delete_remote_system(pk, actor=actor)
        messages.success(request, "Remote system deleted.")
    except FerryError as error:
        messages.error(request, error.message)
    return redirect("importer:system-list")


@login_required
@require_POST
def system_discover(request, pk):
    _discover(request, get_object_or_404(RemoteSystem, pk=pk))
    return redirect("importer:system-list")


def _discover(request, system) -> None:
    """Discovery runs as a job: the page shows "Discovering" until it ends."""
    try:
        services.request_discovery(system.pk, actor=services.Actor.of(request))
        messages.info(request, f"Discovery of {system.name} started; its health and volumes "
                               "update here when it ends.")
    except FerryError as error:
        messages.error(request, f"Discovery of {system.name} could not start: {error.message}")


@login_required
@require_GET
def host_list(request):
    return render(request, "importer/host_list.html", {
        "hosts": Host.objects.annotate(volume_count=Count("mappings")).order_by("name"),
        "can_manage": request.user.has_perm("importer.change_host")})


@login_required
def host_edit(request, pk=None):
    if not request.user.has_perm("importer.change_host"):
        return _forbidden(request, "Only admins add or change hosts.")
    host = get_object_or_404(Host, pk=pk) if pk else None
    form = forms.HostForm(request.POST or None, instance=host)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            saved = services.save_host(
                pk, name=data["name"], os_type=data["os_type"],
                description=data["description"], initiators=form.initiators(),
                actor=services.Actor.of(request))
        except ValidationError as error:
            for field, problems in error.field_errors.items():
                field = "initiators_text" if field == "initiators" else field
                form.add_error(field if field in form.fields else None, problems)
        else:
            messages.success(request, f"Saved host {saved.name}.")
            return redirect("importer:host-list")
    return render(request, "importer/host_form.html", {"form": form, "host": host})


@login_required
@require_POST
def host_delete(request, pk):
    try:
        host = get_object_or_404(Host, pk=pk)
        services.delete_host(pk, actor=services.Actor.of(request))
        messages.success(request, f"Host {host.name} deleted.")
    except FerryError as error:
        messages.error(request, error.message)
    return redirect("importer:host-list")


# --- Storage nodes ---------------------------------------------------------------------------

@login_required
@require_GET
def node_list(request):
    """Worker hosts and their pools; polled, since heartbeats change what it shows."""
    nodes = StorageNode.objects.annotate(
        session_count=Count("import_sessions", filter=Q(
            import_sessions__parent_session__isnull=True)),
        unfinished_count=Count("import_sessions", filter=Q(
            import_sessions__parent_session__isnull=True,
            import_sessions__state__in=UNFINISHED))).order_by("name")
    reserved = reserved_bytes()
    for node in nodes:
        node.available_bytes = available_bytes(node, reserved)
    template = "importer/storage_node_list.html"
    if request.htmx and not request.htmx.boosted:
        template += "#node-table"
    return _htmx_response(request, render(request, template, {"nodes": nodes}))


# --- Events: the audit log -------------------------------------------------------------------

EVENT_COLUMNS = ("timestamp", "session_name", "actor_name", "action", "from_state", "to_state",
                 "outcome", "error_code", "error_message", "subject", "client_address")


def _events(request) -> filters.ImportEventFilter:
    """The API's event filters: an invalid one is left out (the page says which)."""
    return filters.ImportEventFilter(request.GET, queryset=ImportEvent.objects.all())


@login_required
@require_GET
def event_list(request):
    found = _events(request)
    events = found.qs.order_by("-timestamp", "-id")
    page = Paginator(events, 100).get_page(request.GET.get("page"))
    actions = ImportEvent.objects.order_by().values_list("action", flat=True).distinct()
    return render(request, "importer/event_list.html", {
        "page": page, "actions": sorted(actions), "filters": _filters(request),
        "params": request.GET, "filter_errors": found.errors})


@login_required
@require_GET
def event_export(request):
    writer = csv.writer(_Echo())
    rows = (writer.writerow([getattr(e, c) for c in EVENT_COLUMNS])
            for e in _events(request).qs.order_by("-timestamp", "-id").iterator(
                chunk_size=2000))
    response = StreamingHttpResponse(
        itertools.chain([writer.writerow(EVENT_COLUMNS)], rows), content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="ferry-events.csv"'
    return response


class _Echo:
    """csv.writer writes to this and gets the line back, for streaming."""

    def write(self, value):
        return value
