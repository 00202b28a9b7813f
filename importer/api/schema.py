"""OpenAPI generation: every operation documents the problems it can return."""

from drf_spectacular.authentication import BasicScheme
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter

from importer.api.idempotency import HEADER, MAX_KEY_LENGTH, IdempotentPostMixin
from importer.api.problems import PROBLEM_CONTENT_TYPE

_ALWAYS = {"401": "Not logged in, or a bad or expired token.",
           "403": "Your role does not allow this.",
           "406": "The Accept header asks for a type the API does not serve.",
           "429": "Locked out after repeated failed logins (HTTP Basic)."}
_WITH_ID = {"404": "No such object."}
_WITH_BODY = {"400": "Invalid input: see errors.",
              "409": "Refused in the object's current state: see state and allowed_actions.",
              "413": "The body is larger than Ferry reads (DATA_UPLOAD_MAX_MEMORY_SIZE).",
              "415": "The body is not JSON."}
_POST = {"422": "The Idempotency-Key was first used with another request."}
_LIST = {"400": "An invalid filter, ordering or page."}


class FerryAutoSchema(AutoSchema):
    def get_override_parameters(self):
        parameters = super().get_override_parameters()
        if self.method == "POST" and isinstance(self.view, IdempotentPostMixin):
            parameters.append(OpenApiParameter(
                HEADER, {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
                OpenApiParameter.HEADER,
                description="A retry with the same key and body replays the first answer "
                            "and acts once."))
        return parameters

    def _get_response_bodies(self, direction="response"):
        from importer.api.serializers import ProblemSerializer

        responses = super()._get_response_bodies(direction)
        for status_code, description in self._problems().items():
            if status_code not in responses:
                response = self._get_response_for_code(ProblemSerializer, status_code,
                                                       [PROBLEM_CONTENT_TYPE], direction)
                responses[status_code] = {**response, "description": description}
        return responses

    def _problems(self) -> dict[str, str]:
        problems = dict(_ALWAYS)
        if "{" in self.path:
            problems.update(_WITH_ID)
        if self.method in ("POST", "PUT", "PATCH", "DELETE"):
            problems.update(_WITH_BODY)
        if self.method == "POST":
            problems.update(_POST)
        if self.method == "GET" and self._is_list_view():
            problems.update(_LIST)
        return problems


class LockoutAwareBasicScheme(BasicScheme):
    """Documents Ferry's HTTP Basic as plain HTTP Basic (registered by being defined)."""

    target_class = "importer.api.authentication.LockoutAwareBasicAuthentication"
