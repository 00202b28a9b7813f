"""Names refuse control characters (they forge log lines), logs escape them anyway, and host
initiators must be iSCSI names or Fibre Channel WWNs: in the services, the API, the
dashboard and the admin."""

import io
import logging
import logging.config

import pytest
from django.conf import settings
from django.urls import reverse

from importer import services
from importer.errors import ValidationError
from importer.models import Host, ImportEvent, ImportSession, RemoteSystem
from importer.validation import check_initiators, name_problem, normalise_initiator
from tests.api_helpers import API, client_for
from tests.conftest import SourceVolumeFactory, make_session

BAD_NAMES = ["two\nlines", "bell\x07", "esc\x1b[31mred", "tab\there", "bidi\u202eevil",
             "line\u2028separator", "nul\x00"]


# --- Names ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_name_with_a_control_character_is_refused_with_its_escape(name):
    problem = name_problem(name)
    assert problem and "control characters" in problem
    assert "\\" in problem and not any(char in problem for char in "\n\x1b\x00\u202e")


@pytest.mark.parametrize("name", ["esx-prod-01", "Finance CG / ledger", "dépôt 2026", "数据"])
def test_ordinary_names_are_accepted(name):
    assert name_problem(name) is None


@pytest.mark.django_db
@pytest.mark.parametrize("name", BAD_NAMES[:3])
def test_every_service_that_takes_a_name_refuses_a_control_character(name, source_root,
                                                                      admin_user):
    actor = services.Actor(admin_user, "192.0.2.1")
    folder = source_root / "a"
    folder.mkdir()
    calls = [
        lambda: services.create_remote_system(name=name, driver_settings={"path": str(folder)},
                                              actor=actor),
        lambda: services.save_remote_system(
            services.create_remote_system(name="ok", driver_settings={"path": str(folder)},
                                          actor=actor).pk,
            name=name, driver_settings={"path": str(folder)}, actor=actor),
        lambda: services.save_host(None, name=name, actor=actor),
        lambda: services.create_import(
            name=name, source_resource_id=SourceVolumeFactory().pk, actor=actor),
    ]
    for call in calls:
        with pytest.raises(ValidationError) as refused:
            call()
        assert "control characters" in refused.value.field_errors["name"][0]
    assert not RemoteSystem.objects.filter(name=name).exists()
    assert not Host.objects.exists() and not ImportSession.objects.exists()


def test_the_api_refuses_a_host_name_with_a_newline(admin_user):
    response = client_for(admin_user).post(f"{API}/hosts/", {"name": "esx\nFAKE"},
                                           format="json")
    assert response.status_code == 400
    assert "control characters" in response.json()["errors"]["name"][0]


def _configured_handler(stream) -> logging.Handler:
    """A handler built with the formatter settings.LOGGING gives the console."""
    config = settings.LOGGING
    formatter_name = config["handlers"]["console"]["formatter"]
    factory = logging.config.DictConfigurator(config).resolve(
        config["formatters"][formatter_name]["()"])
    handler = logging.StreamHandler(stream)
    handler.setFormatter(factory())
    return handler


@pytest.mark.django_db
def test_a_session_name_with_a_newline_cannot_forge_a_log_line(operator_actor):
    # Written directly, as data from before names were checked would be.
    session = make_session("volume", "Copy_In_Progress",
                           name="vol\n2026-01-01 admin: cancel ok\x1b[2J")
    stream = io.StringIO()
    handler = _configured_handler(stream)
    logger = logging.getLogger("importer.services")
    logger.addHandler(handler)
    try:
        services.perform_action(session.pk, "pause", actor=operator_actor)
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert "vol\\n2026-01-01 admin: cancel ok\\x1b[2J: pause" in lines[0]


def test_a_traceback_keeps_its_lines_after_an_escaped_message():
    stream = io.StringIO()
    handler = _configured_handler(stream)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        handler.emit(logging.LogRecord("x", logging.ERROR, __file__, 1, "bad %s",
                                       ("a\nb",), __import__("sys").exc_info()))
    first, *rest = stream.getvalue().splitlines()
    assert first == "bad a\\nb" and rest[0].startswith("Traceback") and len(rest) > 2


@pytest.mark.parametrize("signal", ["after_setup_logger", "after_setup_task_logger"])
def test_a_celery_workers_log_handlers_escape_too(signal):
    from celery import signals

    stream = io.StringIO()
    logger = logging.getLogger(f"worker-{signal}")
    logger.addHandler(logging.StreamHandler(stream))  # as Celery's own setup adds them
    getattr(signals, signal).send(sender=None, logger=logger, loglevel=logging.INFO,
                                  logfile=None, format="%(message)s", colorize=False)
    logger.warning("%s: pause", "vol\nforged: cancel ok")
    assert stream.getvalue() == "vol\\nforged: cancel ok: pause\n"


# --- Initiators ----------------------------------------------------------------------------

@pytest.mark.parametrize("given, stored", [
    ("iqn.1998-01.com.vmware:esx-prod-01", "iqn.1998-01.com.vmware:esx-prod-01"),
    ("IQN.2005-03.ORG.Open-iSCSI:DB-Linux-02", "iqn.2005-03.org.open-iscsi:DB-Linux-02"),
    ("iqn.2001-04.com.example", "iqn.2001-04.com.example"),
    ("eui.02004567A425678D", "eui.02004567a425678d"),
    ("naa.52004567BA64678D", "naa.52004567ba64678d"),
    ("naa.6006016012345678ABCDEF0123456789", "naa.6006016012345678abcdef0123456789"),
    ("10000000C9A1B2C3", "10:00:00:00:c9:a1:b2:c3"),
    ("50:01:43:80:12:34:56:78", "50:01:43:80:12:34:56:78"),
    (" 21:00:00:24:FF:4A:5B:6C ", "21:00:00:24:ff:4a:5b:6c"),
])
def test_valid_initiators_are_accepted_in_their_canonical_form(given, stored):
    assert normalise_initiator(given) == stored


@pytest.mark.parametrize("given", [
    "hello world", "iqn", "iqn.98-01.com.vmware:x", "iqn.1998-13.com.vmware:x",
    "iqn.1998-01.:x", "iqn.1998-01.com.vmware:has space", "iqn.1998-01.-com.x",
    "eui.02004567A425678", "eui.02004567A425678DX", "naa.1234", "naa." + "1" * 20,
    "10000000C9A1B2C", "10:00:00:00:c9:a1:b2", "1000:0000:c9a1:b2c3", "g000000000000000",
    "iqn.1998-01.com.vmware:esx\n01",
])
def test_anything_else_is_not_an_initiator(given):
    assert normalise_initiator(given) is None


def test_each_bad_initiator_gets_its_own_message_and_repeats_collapse():
    good, problems = check_initiators(["10000000c9a1b2c3", "hello world",
                                       "10:00:00:00:C9:A1:B2:C3", "", "nope"])
    assert good == ["10:00:00:00:c9:a1:b2:c3"]
    assert len(problems) == 2 and problems[0].startswith("'hello world' is not an iSCSI")


def test_the_api_refuses_a_bad_initiator_and_stores_good_ones_normalised(admin_user):
    client = client_for(admin_user)
    response = client.post(f"{API}/hosts/", {"name": "esx-01",
                                             "initiators": ["hello world"]}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"]["initiators"][0].startswith("'hello world' is not")
    response = client.post(f"{API}/hosts/", {"name": "esx-01",
                                             "initiators": ["EUI.02004567A425678D"]},
                           format="json")
    assert response.status_code == 201 and response.json()["initiators"] == [
        "eui.02004567a425678d"]


@pytest.mark.django_db
def test_the_dashboard_host_form_refuses_a_bad_initiator(client, admin_user):
    client.force_login(admin_user)
    response = client.post(reverse("importer:host-create"), {
        "name": "esx-01", "os_type": "ESXi", "initiators_text": "hello world"})
    assert response.status_code == 200
    assert "is not an iSCSI name" in response.content.decode()
    assert response.context["form"].errors["initiators_text"]
    assert not Host.objects.exists()


@pytest.mark.django_db
def test_the_admin_refuses_a_bad_initiator_or_name_with_a_message(client, admin_user):
    admin_user.is_staff = True
    admin_user.save()
    client.force_login(admin_user)
    url = reverse("admin:importer_host_add")
    response = client.post(url, {"name": "esx\x1b01", "os_type": "ESXi", "description": "",
                                 "initiators": '["hello world"]'})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "control characters" in errors["name"][0]
    assert "is not an iSCSI name" in errors["initiators"][0]
    response = client.post(url, {"name": "esx-01", "os_type": "ESXi", "description": "",
                                 "initiators": '"iqn.1998-01.com.vmware:esx01"'})
    assert "A list of initiators" in response.context["adminform"].form.errors["initiators"][0]
    response = client.post(url, {"name": "esx-01", "os_type": "ESXi", "description": "",
                                 "initiators": '["5001438012345678"]'})
    assert response.status_code == 302
    assert Host.objects.get().initiators == ["50:01:43:80:12:34:56:78"]
    assert ImportEvent.objects.filter(action="save_host").exists()
