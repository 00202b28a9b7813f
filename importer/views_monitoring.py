"""The dashboard's monitoring pages: Alerts (with the top bar's bell) and Jobs."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from importer import roles, services
from importer.errors import FerryError
from importer.models import Alert, AlertResource, AlertState, ImportSession, Job, JobState
from importer.services import alerts
from importer.views import _filters, _htmx_response

PAGE_SIZE = 50
# The Alerts page's filters: what each shows.
ALERT_VIEWS = {
    "active": ("Active", {"state": AlertState.ACTIVE, "is_acknowledged": False}),
    "acknowledged": ("Acknowledged", {"is_acknowledged": True}),
    "cleared": ("Cleared", {"state": AlertState.CLEARED}),
    "all": ("All", {}),
}


def subject_urls(rows) -> None:
    """Give each alert or job the address of what it is about (``subject_url``): its
    session, remote system or storage node; none for a session that is gone."""
    session_ids = {int(row.resource_id) for row in rows
                   if row.resource_type == AlertResource.IMPORT_SESSION
                   and row.resource_id.isdigit()}
    existing = set(ImportSession.objects.filter(pk__in=session_ids)
                   .values_list("pk", flat=True))
    for row in rows:
        row.subject_url = ""
        if row.resource_type == AlertResource.IMPORT_SESSION:
            if row.resource_id.isdigit() and int(row.resource_id) in existing:
                row.subject_url = reverse("importer:session-detail", args=[row.resource_id])
        elif row.resource_type == AlertResource.REMOTE_SYSTEM:
            row.subject_url = reverse("importer:system-list")
        elif row.resource_type == AlertResource.STORAGE_NODE:
            row.subject_url = f"{reverse('importer:node-list')}#node-{row.resource_id}"


@login_required
@require_GET
def alert_list(request):
    show = request.GET.get("show", "active")
    show = show if show in ALERT_VIEWS else "active"
    found = Alert.objects.filter(**ALERT_VIEWS[show][1]).order_by("-generated_timestamp")
    page = Paginator(found, PAGE_SIZE).get_page(request.GET.get("page"))
    subject_urls(page.object_list)
    return render(request, "importer/alert_list.html", {
        "page": page, "show": show, "filters": _filters(request),
        "views": [(key, label) for key, (label, _) in ALERT_VIEWS.items()],
        "can_acknowledge": request.user.has_perm(roles.OPERATE)})


@login_required
@require_POST
def alert_acknowledge(request):
    """Acknowledge the chosen alerts, then go back to the page the operator was on."""
    only = request.POST.get("only")  # a row's own button: that alert, whatever is ticked
    ids = [only] if only else request.POST.getlist("ids")
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = ""
    if not ids:
        messages.warning(request, "Select at least one alert to acknowledge.")
    else:
        try:
            done = alerts.acknowledge_alerts(ids, actor=services.Actor.of(request))
        except FerryError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"Acknowledged {done} alert{'s' if done != 1 else ''}.")
    return redirect(back or "importer:alert-list")


@login_required
@require_GET
def alert_bell(request):
    """The top bar's bell, polled so its count follows the alerts."""
    return _htmx_response(request, render(request, "importer/components/alert_bell.html"))


@login_required
@require_GET
def job_list(request):
    state = request.GET.get("state", "")
    jobs = Job.objects.all()
    if state in JobState.values:
        jobs = jobs.filter(state=state)
    else:
        state = ""
    page = Paginator(jobs.order_by("-queued_time"), PAGE_SIZE).get_page(request.GET.get("page"))
    subject_urls(page.object_list)
    template = "importer/job_list.html"
    if request.htmx and not request.htmx.boosted:
        template += "#job-table"
    return _htmx_response(request, render(request, template, {
        "page": page, "state": state, "states": JobState.choices,
        "filters": _filters(request), "retention_days": settings.FERRY_JOB_RETENTION_DAYS}))
