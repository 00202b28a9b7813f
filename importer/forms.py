"""Dashboard forms: the create-import wizard, remote systems and hosts."""

from __future__ import annotations

from datetime import datetime

from django import forms
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
from importer.services.imports import check_import_options
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
    "options": ("name", "schedule", "scheduled_at", "automatic_cutover", "throttle_mbps",
                "storage_node"),
    "review": (),
}


class NodeChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, node):
        return f"{node.name} ({node.health}, {human_bytes(node.free_bytes)} free)"


class ImportWizardForm(BootstrapMixin, forms.Form):
    use_required_attribute = False  # the server checks every step and says what is wrong
    remote_system = forms.ModelChoiceField(RemoteSystem.objects.all(), widget=forms.RadioSelect,
                                           empty_label=None)
    resources = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple)
    hosts = forms.ModelMultipleChoiceField(Host.objects.all(), required=False,
                                           widget=forms.CheckboxSelectMultiple)
    name = forms.CharField(max_length=200, help_text="With several resources, each import is "
                           "named after it: <name> <resource>.")
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
        self.style_widgets()
        upto = WIZARD_STEPS.index(step)
        for later in WIZARD_STEPS[upto + 1:]:  # only what the operator has seen is checked
            for field in STEP_FIELDS[later]:
                self.fields[field].required = False

    def clean(self):
        data = super().clean()
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

    @property
    def scheduled_timestamp(self) -> datetime | None:
        data = self.cleaned_data
        return data.get("scheduled_at") if data.get("schedule") == "later" else None

    @property
    def throttle_bytes_per_second(self) -> int | None:
        mbps = self.cleaned_data.get("throttle_mbps")
        return mbps * MB if mbps else None


def answers(post) -> dict:
    """The wizard's answers so far, as a form's initial values."""
    multiple = {"resources", "hosts"}
    return {name: post.getlist(name) if name in multiple else post.get(name)
            for name in ImportWizardForm.base_fields if name in post}


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
