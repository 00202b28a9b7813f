"""The embedded (folder) broker: a message is never seen half written."""

from queue import Empty

import pytest
from kombu import Connection

from config.celery import FilesystemTransport


@pytest.fixture
def channel(tmp_path):
    folder = str(tmp_path)
    with Connection(transport=FilesystemTransport, transport_options={
            "data_folder_in": folder, "data_folder_out": folder,
            "store_processed": False}) as connection:
        yield connection.default_channel


def test_a_message_put_is_read_back_whole(channel, tmp_path):
    channel._put("jobs", {"task": "copy", "session": 7})
    assert not list(tmp_path.glob("*.part")), "the partial name is renamed away"
    assert channel._get("jobs") == {"task": "copy", "session": 7}


def test_a_message_still_being_written_is_left_alone(channel, tmp_path):
    # What a worker polling the folder sees while another process writes a message:
    # kombu's own transport created the final name first, and a worker read it empty.
    (tmp_path / "1_writing.jobs.msg.part").write_bytes(b'{"task": ')
    with pytest.raises(Empty):
        channel._get("jobs")
