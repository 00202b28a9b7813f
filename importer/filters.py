"""Query filters for the REST API's lists (django-filter)."""

from datetime import UTC

import django_filters
from django import forms
from django.db.models import Q
from django_filters.fields import IsoDateTimeField

from importer.models import (
    STATE_CHOICES,
    DestinationType,
    ImportableCriteria,
    ImportEvent,
    ImportSession,
    SessionType,
    SourceGroup,
    SourceVolume,
    Volume,
)

MAX_ID = 2**63 - 1  # the databases' largest id: anything bigger is a 400, not an overflow


class _IdField(forms.IntegerField):
    def __init__(self, **kwargs):
        super().__init__(min_value=1, max_value=MAX_ID, **kwargs)


class IdFilter(django_filters.NumberFilter):
    """An object's id: a bounded whole number, so a huge one is a 400, not an overflow."""

    field_class = _IdField


class _StorableDateTimeField(IsoDateTimeField):
    def clean(self, value):
        moment = super().clean(value)
        try:
            # In UTC: PostgreSQL refuses offsets beyond ±15:59, which ISO 8601 allows.
            return moment and moment.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError("This date is out of range.") from None


class DateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 moment that the database can compare (year 1 at -23:00 it cannot)."""

    field_class = _StorableDateTimeField


class ImportSessionFilter(django_filters.FilterSet):
    remote_system = IdFilter()
    parent_session = IdFilter()
    state = django_filters.MultipleChoiceFilter(
        choices=STATE_CHOICES, distinct=False,  # no join, so no duplicates to remove
        help_text="Repeat for several states: ?state=A&state=B.")
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
    remote_system = IdFilter()
    group = django_filters.UUIDFilter()
    importable_criteria = django_filters.MultipleChoiceFilter(
        choices=ImportableCriteria.choices, distinct=False)

    class Meta:
        model = SourceVolume
        fields = ["remote_system", "group", "importable_criteria", "name", "identifier"]


class SourceGroupFilter(django_filters.FilterSet):
    remote_system = IdFilter()
    importable_criteria = django_filters.MultipleChoiceFilter(
        choices=ImportableCriteria.choices, distinct=False)

    class Meta:
        model = SourceGroup
        fields = ["remote_system", "importable_criteria", "name"]


class ImportEventFilter(django_filters.FilterSet):
    session = IdFilter(
        method="filter_session", help_text="A session's id; a group's includes its members'.")
    actor = django_filters.CharFilter(field_name="actor_name",
                                      help_text="A username, or system.")
    action = django_filters.CharFilter()
    outcome = django_filters.CharFilter()
    since = DateTimeFilter(field_name="timestamp", lookup_expr="gte")
    until = DateTimeFilter(field_name="timestamp", lookup_expr="lt")

    class Meta:
        model = ImportEvent
        fields = ["session", "actor", "action", "outcome", "since", "until"]

    def filter_session(self, queryset, name, value):
        return queryset.filter(Q(session_id=value) | Q(session__parent_session_id=value))


class VolumeFilter(django_filters.FilterSet):
    volume_group = IdFilter()

    class Meta:
        model = Volume
        fields = ["volume_group", "is_read_only"]
