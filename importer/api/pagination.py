"""Pages of API lists: ``?limit=&offset=``, with a ceiling on ``limit``."""

from rest_framework.pagination import LimitOffsetPagination

MAX_LIMIT = 500


class FerryPagination(LimitOffsetPagination):
    """A larger ``limit`` gets ``MAX_LIMIT`` rows: one request cannot ask the database for
    a whole table, nor for more rows than it can count (a 500 on PostgreSQL)."""

    max_limit = MAX_LIMIT

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.limit_query_param:
                parameter["description"] = (f"Results per page: {self.default_limit} unless "
                                            f"given, at most {MAX_LIMIT}.")
                parameter["schema"] = {**parameter["schema"], "maximum": MAX_LIMIT}
        return parameters
