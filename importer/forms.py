"""Dashboard forms: the create-import wizard, remote systems and hosts."""

from __future__ import annotations

from datetime import datetime

from django import forms
from django.db.models import Prefetch
from django.utils import timezone

from importer.models import (
    DriverType,
    Host,
    ImportableCriteria,
    RemoteSystem,
    SourceGroup,
    SourceVolume,
    StorageNode,
)
from importer.services.imports import (
    VOLUME_GROUP_NAME_MAX,
    check_import_options,
    default_volume_group_name,
    volume_group_name_problem,
)
from importer.ui import human_bytes

MB = 1000 * 1000


def check_schedule(when) -> list[str]:
    """The service's schedule check (a past time is refused), for the wizard's step."""
    return check_import_options("-", when, None).get("scheduled_timestamp", [])


class BootstrapMixin:
    """Bootstrap classes on every widget, so templates render fields plainly."""

    def style_widgets(self):
        for field in self.fields.values():
            widget = field.widget
            if isinstance(widget, (forms.CheckboxSelectMultiple, forms.RadioSelect)):
                continue
            css = "form-check-input" if isinstance(widget, forms.CheckboxInput) else \
                "form-select" if isinstance(widget, forms.Select) else "form-control"
            widget.attrs.setdefault("class", css)


WIZARD_STEPS = ("system", "resources", "hosts", "options", "review")
STEP_FIELDS = {
    "system": ("remote_system",),
    "resources": ("resources",),
    "hosts": ("hosts",),
    "options": ("name", "description", "schedule", "scheduled_at", "automatic_cutover",
                "throttle_mbps", "storage_node"),
    "review": (),
}
# Fields made for each chosen consistency group (and its member volumes): name prefix, step.
GROUP_FIELD_STEPS = {"hosts_mode_": "hosts", "member_hosts_": "hosts",
                     "volume_group_name_": "options"}
UNKNOWN_HOST = "No host with id %(value)s: it was deleted meanwhile? Choose again."
HOSTS_MODES = [("same", "The same hosts for every member volume"),
               ("each", "Hosts per member volume")]


class NodeChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, node):
        return f"{node.name} ({node.health}, {human_bytes(node.free_bytes)} free)"


class ImportWizardForm(BootstrapMixin, forms.Form):
    use_required_attribute = False  # the server checks every step and says what is wrong
    remote_system = forms.ModelChoiceField(RemoteSystem.objects.all(), widget=forms.RadioSelect,
                                           empty_label=None)
    resources = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple)
    hosts = forms.ModelMultipleChoiceField(Host.objects.all(), required=False,
                                           widget=forms.CheckboxSelectMultiple,
                                           error_messages={"invalid_choice": UNKNOWN_HOST})
    name = forms.CharField(max_length=200, help_text="With several resources, each import is "
                           "named after it: <name> <resource>.")
    description = forms.CharField(required=False, max_length=1000,
                                  widget=forms.Textarea(attrs={"rows": 2}),
                                  help_text="Shown on the import's details page.")
    schedule = forms.ChoiceField(choices=[("now", "Start now"), ("later", "Schedule")],
                                 initial="now", widget=forms.RadioSelect)
    scheduled_at = forms.DateTimeField(required=False, label="Start at (UTC)",
                                       widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
                                       input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"])
    automatic_cutover = forms.BooleanField(required=False)
    throttle_mbps = forms.IntegerField(required=False, min_value=2, label="Bandwidth limit (MB/s)",
                                       help_text="Leave empty for no limit.")
    storage_node = NodeChoiceField(
        StorageNode.objects.order_by("name"), required=False,
        empty_label="Automatic: the node with the most room",
        help_text="Where the destination lives (a consistency group's all on one node).")

    def __init__(self, *args, step: str = "system", system_id=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.step = step
        self.system_id = self.data.get("remote_system") if self.is_bound else system_id
        self.fields["resources"].choices = resource_choices(self.system_id)
        self.groups = self._chosen_groups()
        self._add_group_fields()
        self.style_widgets()
        upto = WIZARD_STEPS.index(step)
        for name, field in self.fields.items():  # only what the operator has seen is checked
            if WIZARD_STEPS.index(step_of(name)) > upto:
                field.required = False

    def _chosen_groups(self) -> list[SourceGroup]:
        chosen = (self.data.getlist("resources") if self.is_bound
                  else self.initial.get("resources") or [])
        importable = {choice for choice, _ in self.fields["resources"].choices}
        return list(SourceGroup.objects.filter(
            pk__in=[r for r in chosen if r in importable]).prefetch_related(
            Prefetch("volumes", SourceVolume.objects.order_by("identifier"))).order_by("name"))

    def _add_group_fields(self) -> None:
        for group in self.groups:
            self.fields[f"hosts_mode_{group.pk}"] = forms.ChoiceField(
                choices=HOSTS_MODES, initial="same", required=False, widget=forms.RadioSelect,
                label=f"Hosts of {group.name}'s member volumes")
            for volume in group.volumes.all():
                self.fields[f"member_hosts_{volume.pk}"] = forms.ModelMultipleChoiceField(
                    Host.objects.all(), required=False, widget=forms.CheckboxSelectMultiple,
                    label=volume.name, error_messages={"invalid_choice": UNKNOWN_HOST})
            self.fields[f"volume_group_name_{group.pk}"] = forms.CharField(
                max_length=VOLUME_GROUP_NAME_MAX, label=f"Volume group for {group.name}",
                initial=default_volume_group_name(group),
                help_text="The destination volume group Ferry creates for the group's "
                          "volumes: a new, unique name.")

    def group_rows(self) -> list[dict]:
        """The hosts step's table for each chosen group: a row per member volume."""
        return [{"group": group, "mode": self[f"hosts_mode_{group.pk}"],
                 "members": [self[f"member_hosts_{volume.pk}"]
                             for volume in group.volumes.all()]} for group in self.groups]

    def volume_group_fields(self) -> list:
        return [self[f"volume_group_name_{group.pk}"] for group in self.groups]

    def member_host_ids(self, group: SourceGroup) -> list[dict]:
        """What the service takes for the group: nothing for the same hosts everywhere."""
        data = self.cleaned_data
        if data.get(f"hosts_mode_{group.pk}") != "each":
            return []
        return [{"source_volume_id": volume.pk,
                 "host_ids": [host.pk for host in data.get(f"member_hosts_{volume.pk}", [])]}
                for volume in group.volumes.all()]

    def clean(self):
        data = super().clean()
        if WIZARD_STEPS.index(self.step) >= WIZARD_STEPS.index("options"):
            self._check_volume_group_names(data)
        if data.get("schedule") == "later" and WIZARD_STEPS.index(self.step) >= 3:
            when = data.get("scheduled_at")
            if when is None:
                self.add_error("scheduled_at", "Choose when the import starts.")
            else:
                if timezone.is_naive(when):
                    when = timezone.make_aware(when, timezone.get_current_timezone())
                data["scheduled_at"] = when
                # The service's own check, at the step that asks: not only at Create.
                for problem in check_schedule(when):
                    self.add_error("scheduled_at", problem)
        return data

    def _check_volume_group_names(self, data) -> None:
        seen = set()
        for group in self.groups:
            field = f"volume_group_name_{group.pk}"
            name = (data.get(field) or "").strip()
            if not name:
                continue  # the field says it is required
            problem = volume_group_name_problem(name)
            if problem is None and name.lower() in seen:
                problem = f"Another group of this import is also named {name}."
            if problem:
                self.add_error(field, problem)
            seen.add(name.lower())
            data[field] = name

    @property
    def scheduled_timestamp(self) -> datetime | None:
        data = self.cleaned_data
        return data.get("scheduled_at") if data.get("schedule") == "later" else None

    @property
    def throttle_bytes_per_second(self) -> int | None:
        mbps = self.cleaned_data.get("throttle_mbps")
        return mbps * MB if mbps else None


def step_of(field_name: str) -> str:
    for step, names in STEP_FIELDS.items():
        if field_name in names:
            return step
    return next((step for prefix, step in GROUP_FIELD_STEPS.items()
                 if field_name.startswith(prefix)), "review")


def is_wizard_field(name: str) -> bool:
    return name in ImportWizardForm.base_fields or name.startswith(tuple(GROUP_FIELD_STEPS))


def answers(post) -> dict:
    """The wizard's answers so far, as a form's initial values."""
    multiple = ("resources", "hosts", "member_hosts_")
    return {name: post.getlist(name) if name.startswith(multiple) else post.get(name)
            for name in post if is_wizard_field(name)}


def importable(source) -> tuple[bool, str]:
    if source.importable_criteria == ImportableCriteria.READY:
        return True, ""
    reason = source.get_importable_criteria_display()
    return False, f"{reason}{': ' + source.importable_reason if source.importable_reason else ''}"


def resource_rows(system_id):
    """What the resources step lists: groups, then volumes that belong to no group."""
    if not system_id or not str(system_id).isdigit():
        return []
    groups = SourceGroup.objects.filter(remote_system_id=system_id).prefetch_related("volumes")
    volumes = SourceVolume.objects.filter(remote_system_id=system_id, group__isnull=True)
    rows = [{"id": str(g.pk), "name": g.name, "kind": "Consistency group", "size": g.size,
             "members": len(g.volumes.all()), "criteria": g.get_importable_criteria_display(),
             "ok": importable(g)[0], "reason": importable(g)[1]} for g in groups]
    rows += [{"id": str(v.pk), "name": v.name, "kind": "Volume", "size": v.size, "members": 0,
              "criteria": v.get_importable_criteria_display(), "ok": importable(v)[0],
              "reason": importable(v)[1]} for v in volumes]
    return rows


def resource_choices(system_id):
    return [(row["id"], row["name"]) for row in resource_rows(system_id) if row["ok"]]


class RemoteSystemForm(BootstrapMixin, forms.Form):
    """A remote system: its driver's fields are shown for the chosen type (ferry.js)."""

    # Which fields belong to which driver: the page shows one set at a time.
    DRIVER_FIELDS = {DriverType.DIRECTORY: ("path",),
                     DriverType.NBD: ("uri", "tls_psk_file", "tls_certificates",
                                      "tls_username", "groups")}

    name = forms.CharField(max_length=128)
    driver_type = forms.ChoiceField(choices=DriverType.choices, label="Type", required=False,
                                    initial=DriverType.DIRECTORY)
    path = forms.CharField(max_length=1000, label="Folder", required=False,
                           help_text="A folder under the allowed source roots.")
    uri = forms.CharField(max_length=1000, label="NBD server", required=False,
                          help_text="nbd://host[:port], nbd+unix:///?socket=/path, or nbds:// "
                                    "for TLS. Each export is a volume.")
    tls_psk_file = forms.CharField(max_length=1000, required=False, label="TLS PSK file",
                                   help_text="nbds only: a file of username:hexkey lines, "
                                             "readable by the workers.")
    tls_certificates = forms.CharField(max_length=1000, required=False,
                                       label="TLS certificates folder",
                                       help_text="nbds only, instead of a PSK: a folder with "
                                                 "ca-cert.pem (and client-cert.pem, "
                                                 "client-key.pem).")
    tls_username = forms.CharField(max_length=255, required=False, label="TLS username",
                                   help_text="The PSK identity; default: the file's first.")
    groups = forms.CharField(required=False, label="Consistency groups",
                             widget=forms.Textarea(attrs={"rows": 3}),
                             help_text="One per line: group: export, export. Exports named "
                                       "group/volume form groups by themselves.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if editing:  # a system's driver is fixed: its volumes were found by it
            self.fields["driver_type"].disabled = True
        self.style_widgets()

    @classmethod
    def initial_for(cls, system: RemoteSystem) -> dict:
        settings = system.driver_settings
        groups = "\n".join(f"{name}: {', '.join(exports)}"
                           for name, exports in settings.get("groups", {}).items())
        return {"name": system.name, "driver_type": system.driver_type,
                "description": system.description, "groups": groups,
                **{key: settings.get(key, "") for key in
                   ("path", "uri", "tls_psk_file", "tls_certificates", "tls_username")}}

    def clean_driver_type(self) -> str:
        return self.cleaned_data["driver_type"] or DriverType.DIRECTORY

    def clean_groups(self) -> dict[str, list[str]]:
        groups = {}
        for number, line in enumerate(self.cleaned_data["groups"].splitlines(), 1):
            if not line.strip():
                continue
            name, colon, exports = line.partition(":")
            names = [export.strip() for export in exports.split(",") if export.strip()]
            if not colon or not name.strip() or not names:
                raise forms.ValidationError(f"Line {number}: write group: export, export.")
            groups[name.strip()] = names
        return groups

    def driver_settings(self) -> dict:
        """The chosen driver's settings, as the service checks them."""
        data = self.cleaned_data
        kept = self.DRIVER_FIELDS[DriverType(data["driver_type"])]
        return {key: data[key] for key in kept if data.get(key)}


class ScheduleForm(forms.Form):
    """A Scheduled import's new start time (UTC, as in the wizard)."""

    scheduled_at = forms.DateTimeField(label="Start at (UTC)",
                                       input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"])

    def clean_scheduled_at(self):
        when = self.cleaned_data["scheduled_at"]
        if timezone.is_naive(when):
            when = timezone.make_aware(when, timezone.get_current_timezone())
        problems = check_schedule(when)
        if problems:
            raise forms.ValidationError(problems)
        return when


class HostForm(BootstrapMixin, forms.ModelForm):
    initiators_text = forms.CharField(required=False, label="Initiators",
                                      widget=forms.Textarea(attrs={"rows": 3}),
                                      help_text="One per line: an iSCSI name (iqn., eui., "
                                                "naa.) or a Fibre Channel WWN.")

    class Meta:
        model = Host
        fields = ["name", "os_type", "description"]
        labels = {"os_type": "OS type"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["initiators_text"].initial = "\n".join(self.instance.initiators)
        self.style_widgets()

    def initiators(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data["initiators_text"].splitlines()
                if line.strip()]
