"""Deleting a remote system or a host asks first (the confirmation dialog), and a host
in use is refused with a message that says why."""

import pytest
from django.urls import reverse

from importer.models import Host, HostVolumeMapping, ImportEvent, Volume
from tests.conftest import HostFactory, RemoteSystemFactory, make_session

pytestmark = pytest.mark.django_db


def test_a_remote_system_delete_button_opens_the_dialog(client, admin_user):
    RemoteSystemFactory(name="old-array")
    client.force_login(admin_user)
    page = client.get(reverse("importer:system-list")).content.decode()
    assert 'type="button" class="btn btn-sm btn-outline-danger" data-confirm-form="true"' in page
    assert 'data-confirm-label="Delete remote system"' in page
    assert 'data-dismiss-label="Keep it"' in page


def test_an_admin_deletes_an_unused_host_through_the_service(client, admin_user):
    host = HostFactory(name="esx-old")
    client.force_login(admin_user)
    page = client.get(reverse("importer:host-list")).content.decode()
    assert 'data-confirm-label="Delete host"' in page
    response = client.post(reverse("importer:host-delete", args=[host.pk]), follow=True)
    assert "Host esx-old deleted." in response.content.decode()
    assert not Host.objects.filter(pk=host.pk).exists()
    assert ImportEvent.objects.filter(action="delete_host", subject="host esx-old").exists()


def test_a_host_mapped_to_an_active_import_is_not_deleted(client, admin_user):
    host = HostFactory(name="esx-busy")
    session = make_session("volume", "Copy_In_Progress", name="busy")
    session.hosts.add(host)
    volume = Volume.objects.create(name="dest", size=1, location="/pool/dest")
    HostVolumeMapping.objects.create(host=host, volume=volume)
    client.force_login(admin_user)
    response = client.post(reverse("importer:host-delete", args=[host.pk]), follow=True)
    assert "esx-busy is mapped to 1 volume(s) and used by 1 unfinished import" in \
        response.content.decode()
    assert Host.objects.filter(pk=host.pk).exists()


def test_an_operator_may_not_delete_hosts(client, operator):
    host = HostFactory(name="esx-kept")
    client.force_login(operator)
    client.post(reverse("importer:host-delete", args=[host.pk]), follow=True)
    assert Host.objects.filter(pk=host.pk).exists()


def test_the_host_form_says_os_type(client, admin_user):
    client.force_login(admin_user)
    page = client.get(reverse("importer:host-create")).content.decode()
    assert "OS type" in page and "Os type" not in page
