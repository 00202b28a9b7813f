"""Every API error as an RFC 9457 problem (``application/problem+json``) with a stable code.

Domain errors from the services keep their own codes; DRF's errors (bad JSON, a missing
login, an unknown id) get codes of the same shape. Refused logins and roles are audited.
"""

from http import HTTPStatus

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response

from importer import audit, errors

PROBLEM_CONTENT_TYPE = "application/problem+json"

_FERRY_STATUS = {
    errors.NotFound: status.HTTP_404_NOT_FOUND,
    errors.PermissionDenied: status.HTTP_403_FORBIDDEN,
    errors.ValidationError: status.HTTP_400_BAD_REQUEST,
    errors.ActionNotAllowed: status.HTTP_409_CONFLICT,
    errors.InUse: status.HTTP_409_CONFLICT,
    errors.ManualStepRequired: status.HTTP_409_CONFLICT,
    # The source is missing, unreadable or unreachable: the request was fine, the remote
    # system's condition conflicts with it.
    errors.SourceError: status.HTTP_409_CONFLICT,
}
_DRF_CODES = {
    exceptions.ParseError: "malformed_request",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    exceptions.ValidationError: "validation_error",
}


def problem(status_code: int, code: str, detail: str, request=None, **extensions) -> Response:
    return Response(_body(status_code, code, detail, request, extensions),
                    status=status_code, content_type=PROBLEM_CONTENT_TYPE)


def _body(status_code: int, code: str, detail: str, request, extensions=None) -> dict:
    body = {"type": f"urn:ferry:problem:{code}", "title": _title(status_code),
            "status": status_code, "detail": detail, "code": code, **(extensions or {})}
    if request is not None:
        body["instance"] = request.get_full_path()
    return body


def problem_exception_handler(exc, context):
    request = context.get("request")
    if isinstance(exc, errors.FerryError):
        return _ferry_problem(exc, request)
    if isinstance(exc, RequestDataTooBig):
        return problem(413, "request_too_large", _too_large(), request)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):  # as DRF's own handler maps it
        exc = exceptions.PermissionDenied(str(exc) or None)
    if not isinstance(exc, exceptions.APIException):
        return None  # a real bug: Django's 500 handling logs it
    response = _drf_problem(exc, request)
    if exc.status_code in (401, 403) and request is not None:
        _audit_refusal(request, exc, response.data["code"])
    headers = getattr(exc, "auth_header", None)
    if headers:
        response["WWW-Authenticate"] = headers
    if getattr(exc, "wait", None):  # throttled, or locked out
        response["Retry-After"] = str(int(exc.wait))
    return response


def _ferry_problem(error: errors.FerryError, request) -> Response:
    status_code = getattr(error, "status", None) or next(
        (code for kind, code in _FERRY_STATUS.items() if isinstance(error, kind)),
        status.HTTP_400_BAD_REQUEST)
    if isinstance(error, errors.ValidationError):
        extensions = {"errors": error.field_errors}
    else:
        extensions = {"arguments": error.arguments}
    if isinstance(error, errors.ActionNotAllowed):
        extensions["state"] = error.state
        extensions["allowed_actions"] = error.allowed_actions
    return problem(status_code, error.code, error.message, request, **extensions)


def _drf_problem(exc: exceptions.APIException, request) -> Response:
    code = next((code for kind, code in _DRF_CODES.items() if isinstance(exc, kind)),
                exc.default_code)
    if isinstance(exc, exceptions.ValidationError):
        field_errors = _field_errors(exc.detail)
        summary = "; ".join(f"{field}: {' '.join(messages)}"
                            for field, messages in field_errors.items())
        return problem(exc.status_code, code, f"Invalid input. {summary}", request,
                       errors=field_errors)
    return problem(exc.status_code, code, str(exc.detail), request)


def _field_errors(detail, prefix: str = "") -> dict[str, list[str]]:
    """Flatten DRF's nested error detail into {"field" or "field.sub": [messages]}."""
    if isinstance(detail, dict):
        flat = {}
        for field, value in detail.items():
            name = f"{prefix}.{field}" if prefix else str(field)
            flat.update(_field_errors(value, name))
        return flat
    if isinstance(detail, list) and any(isinstance(item, (dict, list)) for item in detail):
        flat = {}
        for index, item in enumerate(detail):
            flat.update(_field_errors(item, f"{prefix}.{index}" if prefix else str(index)))
        return flat
    messages = detail if isinstance(detail, list) else [detail]
    return {prefix or "non_field_errors": [str(message) for message in messages]}


def _audit_refusal(request, exc, code: str) -> None:
    authorization = request.META.get("HTTP_AUTHORIZATION", "")
    if isinstance(exc, exceptions.AuthenticationFailed) and authorization.startswith("Basic"):
        return  # a wrong password: the failed-login signal has recorded it already
    audit.record_denial(request, code=code, message=str(exc.detail))


def _title(status_code: int) -> str:
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return "Error"


@csrf_exempt  # it changes nothing, and a POST to a wrong URL deserves a 404, not a 403
def api_not_found(request, exception=None):
    """Django's 404 for a URL no route matches, as a problem for API clients."""
    return _plain_problem(request, 404, "not_found", f"No resource at {request.path}.")


def _too_large() -> str:
    return (f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes, "
            "the most Ferry reads.")


def bad_request(request, exception=None):
    """Django's 400 handler (a request it refused before any view): a problem for API
    clients, the usual page for browsers."""
    if not request.path.startswith("/api/"):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        return _plain_problem(request, 413, "request_too_large", _too_large())
    # Not str(exception): it may name settings (ALLOWED_HOSTS) that are none of the client's.
    return _plain_problem(request, 400, "bad_request", "The request was refused before it "
                          "reached the API (for example, a Host header Ferry does not serve).")


def server_error(request):
    """Django's 500 handler: a problem for API clients, the usual page for browsers. The
    traceback goes to the log only."""
    if not request.path.startswith("/api/"):
        return defaults.server_error(request)
    return _plain_problem(request, 500, "server_error",
                          "Ferry hit an unexpected error; it is in the server log.")


def _plain_problem(request, status_code: int, code: str, detail: str):
    return JsonResponse(_body(status_code, code, detail, request), status=status_code,
                        content_type=PROBLEM_CONTENT_TYPE)
