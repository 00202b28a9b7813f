"""The charts: a session's transfer rate over time, and the Overview of the whole system
(throughput over time, bytes remaining, sessions by state). Series are served as JSON."""

from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from importer.models import ImportSession
from importer.services import samples

DEFAULT_WINDOW = "1h"


@login_required
@require_GET
def session_rates(request, pk):
    """The details page's chart: this session's rate at each sample, live while active."""
    session = get_object_or_404(ImportSession, pk=pk)
    series = samples.session_series(session)
    return JsonResponse({**series.as_json(), "session": session.name,
                         "live": not session.state_info.is_terminal})


def _window(request) -> str | None:
    chosen = request.GET.get("window", DEFAULT_WINDOW)
    return chosen if chosen in samples.WINDOWS else None


@login_required
@require_GET
def overview_throughput(request):
    window = _window(request)
    if window is None:
        return JsonResponse({"code": "invalid_window", "message": "window must be one of "
                             f"{', '.join(samples.WINDOWS)}.",
                             "arguments": {"window": request.GET.get("window")}}, status=400)
    series = samples.system_series(samples.WINDOWS[window])
    return JsonResponse({**series.as_json(), "window": window, "live": True})


@login_required
@require_GET
def overview(request):
    window = _window(request) or DEFAULT_WINDOW
    figures = samples.system_figures()
    context = {"figures": figures, "window": window, "windows": list(samples.WINDOWS),
               "series": samples.system_series(samples.WINDOWS[window])}
    template = "importer/overview.html"
    if request.htmx and not request.htmx.boosted:
        template += "#overview-figures"
    response = render(request, template, context)
    response["Vary"] = "HX-Request"
    return response
