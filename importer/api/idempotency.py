"""``Idempotency-Key`` for POSTs: a retried request gets the first response again.

The first request with a key claims it (a unique row), then stores its response. The same
key with the same body replays that response; with another body or endpoint it is a 422;
while the first is still running it is a 409. A POST without the key runs normally.
"""

import hashlib
import json

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from rest_framework.response import Response

from importer.api.problems import PROBLEM_CONTENT_TYPE
from importer.errors import FerryError
from importer.models import IdempotencyRecord
from importer.validation import escape_controls

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


class IdempotencyError(FerryError):
    def __init__(self, code: str, status: int, message: str, **arguments):
        super().__init__(message, **arguments)
        self.code, self.status = code, status


class _Replay(Exception):
    def __init__(self, record: IdempotencyRecord):
        self.record = record


class IdempotentPostMixin:
    """For API views: honours the header on every POST the view handles."""

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authenticated and permitted first
        self._idempotency_record = None
        key = request.headers.get(HEADER)
        if request.method == "POST" and key is not None:
            self._idempotency_record = _claim(request, key)

    def handle_exception(self, exc):
        if isinstance(exc, _Replay):
            return _replayed(exc.record)
        try:
            return super().handle_exception(exc)
        except Exception:  # a server error: free the key so the client can retry
            _release(getattr(self, "_idempotency_record", None))
            raise

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        record, self._idempotency_record = getattr(self, "_idempotency_record", None), None
        if record is not None:
            _remember(record, response)
        return response


def purge_expired(now=None) -> int:
    """Forget every expired key (the scheduler tick does this too)."""
    return IdempotencyRecord.objects.expired(now).delete()[0]


def _claim(request, key: str) -> IdempotencyRecord:
    if not key.strip() or len(key) > MAX_KEY_LENGTH or escape_controls(key) != key:
        raise IdempotencyError("invalid_idempotency_key", 400,
                               f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable characters.")
    request_hash = _fingerprint(request)
    # Only this key's expired record: the scheduler tick purges the rest.
    IdempotencyRecord.objects.expired().filter(user=request.user, key=key).delete()
    try:
        with transaction.atomic():
            return IdempotencyRecord.objects.create(
                user=request.user, key=key, method=request.method,
                path=request.path[:1000], request_hash=request_hash)
    except IntegrityError:
        pass
    first = IdempotencyRecord.objects.get(user=request.user, key=key)
    if first.request_hash != request_hash:
        raise IdempotencyError(
            "idempotency_key_reused", 422,
            f"{HEADER} {key!r} was first used for {first.method} {first.path} with another "
            "body. Use a new key for a new request.", key=key)
    if first.status_code is None:
        raise IdempotencyError("idempotency_key_in_use", 409,
                               f"The first request with {HEADER} {key!r} is still running; "
                               "retry in a moment.", key=key)
    raise _Replay(first)


def _fingerprint(request) -> str:
    body = json.dumps(request.data, sort_keys=True, cls=DjangoJSONEncoder)
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def _remember(record: IdempotencyRecord, response) -> None:
    if response.status_code >= 500:
        _release(record)
        return
    body = json.loads(json.dumps(getattr(response, "data", None), cls=DjangoJSONEncoder))
    IdempotencyRecord.objects.filter(pk=record.pk).update(status_code=response.status_code,
                                                         response_body=body)


def _release(record: IdempotencyRecord | None) -> None:
    if record is not None:
        IdempotencyRecord.objects.filter(pk=record.pk).delete()


def _replayed(record: IdempotencyRecord) -> Response:
    content_type = PROBLEM_CONTENT_TYPE if record.status_code >= 400 else None
    return Response(record.response_body, status=record.status_code,
                    headers={"Idempotent-Replayed": "true"}, content_type=content_type)
