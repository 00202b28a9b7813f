"""Query filters for the lists (django-filter): one FilterSet per list, shared by the REST
API and the dashboard's page, so a parameter means the same thing in both."""

import re
from datetime import UTC, datetime, time, timedelta

import django_filters
from django import forms
from django.db.models import Q
from django.utils import timezone
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


_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")


class _StorableDateTimeField(IsoDateTimeField):
    days_after = 0  # a date alone is the start of that day, plus this many days

    def to_python(self, value):
        if isinstance(value, str) and _DATE_ONLY.fullmatch(value.strip()):
            try:  # the dashboard's date inputs: a day in the server's timezone
                start = datetime.combine(datetime.fromisoformat(value.strip()).date()
                                         + timedelta(days=self.days_after), time.min)
            except (ValueError, OverflowError):
                raise forms.ValidationError("Enter a valid date or date/time.") from None
            return timezone.make_aware(start)
        return super().to_python(value)

    def clean(self, value):
        moment = super().clean(value)
        try:
            # In UTC: PostgreSQL refuses offsets beyond ±15:59, which ISO 8601 allows.
            return moment and moment.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError("This date is out of range.") from None


class _StorableEndField(_StorableDateTimeField):
    days_after = 1


class DateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 moment that the database can compare (year 1 at -23:00 it cannot), or a
    date: its start."""

    field_class = _StorableDateTimeField


class EndDateTimeFilter(DateTimeFilter):
    """An exclusive end: a moment, or a date, which includes that whole day."""

    field_class = _StorableEndField


class ImportSessionFilter(django_filters.FilterSet):
    remote_system = IdFilter()
    storage_node = IdFilter(help_text="Sessions whose destinations are on this storage node.")
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
    q = django_filters.CharFilter(
        method="filter_q", help_text="Sessions whose name, description or remote system's "
                                     "name contains this (the dashboard's search).")

    class Meta:
        model = ImportSession
        fields = ["state", "type", "remote_system", "storage_node", "parent_session",
                  "destination_resource_type", "name", "top_level", "q"]

    def filter_q(self, queryset, name, value):
        value = value.strip()
        return queryset.filter(Q(name__icontains=value) | Q(description__icontains=value)
                               | Q(remote_system__name__icontains=value)) if value else queryset


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
    q = django_filters.CharFilter(
        method="filter_q", help_text="Events whose session name or subject (a system, a "
                                     "host, a path) contains this.")
    actor = django_filters.CharFilter(field_name="actor_name",
                                      help_text="A username, or system: exactly.")
    action = django_filters.CharFilter()
    outcome = django_filters.CharFilter()
    since = DateTimeFilter(
        field_name="timestamp", lookup_expr="gte",
        help_text="From this ISO 8601 moment on; a date alone (2026-01-31) is its start.")
    until = EndDateTimeFilter(
        field_name="timestamp", lookup_expr="lt",
        help_text="Before this ISO 8601 moment; a date alone (2026-01-31) includes that day.")

    class Meta:
        model = ImportEvent
        fields = ["session", "q", "actor", "action", "outcome", "since", "until"]

    def filter_session(self, queryset, name, value):
        return queryset.filter(Q(session_id=value) | Q(session__parent_session_id=value))

    def filter_q(self, queryset, name, value):
        value = value.strip()
        return queryset.filter(Q(session_name__icontains=value)
                               | Q(subject__icontains=value)) if value else queryset


class VolumeFilter(django_filters.FilterSet):
    volume_group = IdFilter()

    class Meta:
        model = Volume
        fields = ["volume_group", "is_read_only"]
