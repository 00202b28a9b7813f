"""Query filters for the REST API's lists (django-filter)."""

import django_filters
from django.db.models import Q

from importer.models import (
    STATE_CHOICES,
    DestinationType,
    ImportableCriteria,
    ImportEvent,
    ImportSession,
    SessionType,
    SourceGroup,
    SourceVolume,
)


class ImportSessionFilter(django_filters.FilterSet):
    state = django_filters.MultipleChoiceFilter(
        choices=STATE_CHOICES, help_text="Repeat for several states: ?state=A&state=B.")
    type = django_filters.ChoiceFilter(choices=SessionType.choices)
    destination_resource_type = django_filters.ChoiceFilter(choices=DestinationType.choices)
    name = django_filters.CharFilter(lookup_expr="icontains",
                                     help_text="Sessions whose name contains this.")
    top_level = django_filters.BooleanFilter(
        field_name="parent_session", lookup_expr="isnull",
        help_text="true: volume and group sessions only, without group members.")

    class Meta:
        model = ImportSession
        fields = ["state", "type", "remote_system", "parent_session",
                  "destination_resource_type", "name", "top_level"]


class SourceVolumeFilter(django_filters.FilterSet):
    importable_criteria = django_filters.MultipleChoiceFilter(
        choices=ImportableCriteria.choices)

    class Meta:
        model = SourceVolume
        fields = ["remote_system", "group", "importable_criteria"]


class SourceGroupFilter(django_filters.FilterSet):
    importable_criteria = django_filters.MultipleChoiceFilter(
        choices=ImportableCriteria.choices)

    class Meta:
        model = SourceGroup
        fields = ["remote_system", "importable_criteria"]


class ImportEventFilter(django_filters.FilterSet):
    session = django_filters.NumberFilter(
        method="filter_session", help_text="A session's id; a group's includes its members'.")
    actor = django_filters.CharFilter(field_name="actor_name",
                                      help_text="A username, or system.")
    action = django_filters.CharFilter()
    outcome = django_filters.CharFilter()
    since = django_filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="lt")

    class Meta:
        model = ImportEvent
        fields = ["session", "actor", "action", "outcome", "since", "until"]

    def filter_session(self, queryset, name, value):
        return queryset.filter(Q(session_id=value) | Q(session__parent_session_id=value))
