"""The wizard's description, destination volume group name and hosts per member volume:
each answer is checked at its own step, shown at Review, and created as given."""

import pytest
from django.urls import reverse

from importer import services
from importer.models import ImportSession, VolumeGroup
from tests.conftest import HostFactory, MiB, discovered_system, write_random

WIZARD = reverse("importer:import-create")


@pytest.fixture
def array(source_root):
    for group, volumes in {"cg-web": ("a.img", "b.img"), "cg-db": ("c.img",)}.items():
        for volume in volumes:
            write_random(source_root / "array" / group / volume, MiB)
    return discovered_system(source_root / "array")


@pytest.fixture
def hosts(db):
    return HostFactory(name="esx-01"), HostFactory(name="web-01")


def _ids(array):
    groups = {g.name: str(g.pk) for g in array.source_groups.all()}
    volumes = {v.name: str(v.pk) for v in array.source_volumes.all()}
    return groups, volumes


def _answers(array, esx, web, **changes):
    """Every answer up to Review: cg-web, esx-01 for every volume but b.img (web-01)."""
    groups, volumes = _ids(array)
    web_group = groups["cg-web"]
    answers = {"remote_system": array.pk, "resources": [web_group], "hosts": [esx.pk],
               f"hosts_mode_{web_group}": "each", f"member_hosts_{volumes['a.img']}": [esx.pk],
               f"member_hosts_{volumes['b.img']}": [web.pk], "name": "wave-1",
               "description": "Web tier, first wave", "schedule": "now",
               f"volume_group_name_{web_group}": "web-prod"}
    return {**answers, **changes}


def _post(client, step, answers, go="next"):
    response = client.post(WIZARD, {**answers, "step": step, "go": go})
    assert response.status_code in (200, 302)
    return response


def _shown_step(body: str) -> str:
    return body.split('name="step" value="', 1)[1].split('"', 1)[0]


@pytest.mark.django_db
def test_the_hosts_step_offers_a_host_table_per_member_of_each_chosen_group(
        client, operator, array, hosts):
    client.force_login(operator)
    groups, volumes = _ids(array)
    body = _post(client, "resources", {"remote_system": array.pk,
                                      "resources": [groups["cg-web"]]}).content.decode()
    assert _shown_step(body) == "hosts"
    assert f'name="hosts_mode_{groups["cg-web"]}" value="same"' in body
    assert "The same hosts for every member volume" in body
    for name in ("a.img", "b.img"):
        assert f'name="member_hosts_{volumes[name]}"' in body
    assert "c.img" not in body  # cg-db was not chosen


@pytest.mark.django_db
def test_the_options_step_asks_for_a_description_and_proposes_the_volume_group_name(
        client, operator, array, hosts):
    client.force_login(operator)
    VolumeGroup.objects.create(name="cg-web")
    answers = _answers(array, *hosts)
    del answers[f"volume_group_name_{_ids(array)[0]['cg-web']}"]
    body = _post(client, "hosts", answers).content.decode()
    assert _shown_step(body) == "options"
    assert 'name="description"' in body
    assert "Volume group for cg-web" in body and 'value="cg-web-2"' in body


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "words"), [
    ("", "This field is required."),
    ("taken", "A volume group named taken already exists."),
    ("bad\x1bname", "cannot contain control characters"),
    ("x" * 129, "at most 128 characters"),
])
def test_a_bad_volume_group_name_is_refused_at_the_options_step(client, operator, array,
                                                                hosts, name, words):
    client.force_login(operator)
    VolumeGroup.objects.create(name="taken")
    groups, _ = _ids(array)
    answers = _answers(array, *hosts, **{f"volume_group_name_{groups['cg-web']}": name})
    body = _post(client, "options", answers).content.decode()
    assert _shown_step(body) == "options"
    assert words in body and 'class="invalid-feedback' in body


@pytest.mark.django_db
def test_two_groups_of_one_wizard_cannot_share_a_volume_group_name(client, operator, array,
                                                                   hosts):
    client.force_login(operator)
    groups, _ = _ids(array)
    answers = _answers(array, *hosts, resources=list(groups.values()),
                       **{f"volume_group_name_{g}": "shared" for g in groups.values()})
    body = _post(client, "options", answers).content.decode()
    assert _shown_step(body) == "options"
    assert "Another group of this import is also named shared." in body


@pytest.mark.django_db
def test_an_unknown_host_is_refused_at_the_hosts_step(client, operator, array, hosts):
    client.force_login(operator)
    _, volumes = _ids(array)
    bad = _answers(array, *hosts, **{f"member_hosts_{volumes['b.img']}": ["987654"]})
    body = _post(client, "hosts", bad).content.decode()
    assert _shown_step(body) == "hosts"
    assert "b.img: No host with id 987654" in body
    # a host deleted after the hosts step: Create sends the operator back there
    body = _post(client, "review", _answers(array, *hosts, hosts=["987654"])).content.decode()
    assert _shown_step(body) == "hosts" and "No host with id 987654" in body
    assert not ImportSession.objects.exists()


@pytest.mark.django_db
def test_review_shows_the_description_the_volume_group_and_each_members_hosts(
        client, operator, array, hosts):
    client.force_login(operator)
    body = _post(client, "options", _answers(array, *hosts)).content.decode()
    assert _shown_step(body) == "review"
    assert "Web tier, first wave" in body
    assert "Volume group <strong>web-prod</strong>; hosts per member volume" in body
    assert "a.img → esx-01" in body and "b.img → web-01" in body
    same = _answers(array, *hosts, **{f"hosts_mode_{_ids(array)[0]['cg-web']}": "same"})
    body = _post(client, "options", same).content.decode()
    assert "the same hosts for every member volume" in body
    assert "a.img → esx-01" in body and "b.img → esx-01" in body


@pytest.mark.django_db(transaction=True)
def test_create_stores_the_description_the_volume_group_name_and_member_hosts(
        client, operator, array, hosts, enqueued):
    client.force_login(operator)
    response = _post(client, "review", _answers(array, *hosts))
    assert response.status_code == 302
    session = ImportSession.objects.get(name="wave-1")
    assert session.description == "Web tier, first wave"
    assert session.volume_group_name == "web-prod"
    member_hosts = {m.source_volume.name: [h.name for h in m.hosts.all()]
                    for m in session.members.select_related("source_volume")}
    assert member_hosts == {"a.img": ["esx-01"], "b.img": ["web-01"]}


@pytest.mark.django_db
def test_a_volume_group_name_taken_meanwhile_is_shown_at_the_options_step(
        client, operator, array, hosts, operator_actor):
    client.force_login(operator)
    groups, _ = _ids(array)
    services.create_import(name="other", source_resource_id=groups["cg-db"],
                           volume_group_name="web-prod", actor=operator_actor)
    body = _post(client, "review", _answers(array, *hosts)).content.decode()
    assert _shown_step(body) == "options"
    assert "Import session other creates a volume group named web-prod" in body
    assert not ImportSession.objects.filter(name="wave-1").exists()


@pytest.mark.django_db(transaction=True)
def test_the_details_page_shows_the_description_line_by_line(client, operator, array, hosts,
                                                            enqueued):
    client.force_login(operator)
    _post(client, "review", _answers(array, *hosts, description="Web tier\nfirst wave"))
    session = ImportSession.objects.get(name="wave-1")
    body = client.get(reverse("importer:session-detail", args=[session.pk])).content.decode()
    assert "Web tier<br>first wave" in body


@pytest.mark.django_db
def test_the_services_refusal_at_create_is_shown_next_to_the_groups_field(
        client, operator, array, hosts, monkeypatch):
    """What only the service sees at Create (here: the form's check skipped, as if a
    concurrent create took the name between Review and Create) is not a 500."""
    from importer import forms

    client.force_login(operator)
    VolumeGroup.objects.create(name="web-prod")
    monkeypatch.setattr(forms, "volume_group_name_problem", lambda name: None)
    body = _post(client, "review", _answers(array, *hosts)).content.decode()
    assert _shown_step(body) == "options"
    assert "A volume group named web-prod already exists." in body
    groups, _ = _ids(array)
    field = body.split(f'name="volume_group_name_{groups["cg-web"]}"', 1)[1]
    own = field.split('<div class="mb-3">', 1)[0]  # up to the next field
    assert 'role="alert">A volume group named web-prod already exists.' in own
    assert not ImportSession.objects.exists()
