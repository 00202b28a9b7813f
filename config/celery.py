"""The Celery app: configured from Django settings (the CELERY_* names)."""

import logging
import os
import time
import uuid
import warnings

from celery import Celery
from celery.exceptions import CPendingDeprecationWarning
from celery.signals import after_setup_logger, worker_ready, worker_shutdown
from kombu.exceptions import ChannelError
from kombu.transport import filesystem as kombu_filesystem
from kombu.transport import redis as kombu_redis
from kombu.utils.json import dumps
from redis.exceptions import ConnectionError as RedisConnectionError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("ferry")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@after_setup_logger.connect
def quiet_routine_task_logs(**_kwargs):
    """The scheduler ticks every few seconds; log task failures, not every success."""
    logging.getLogger("celery.app.trace").setLevel(logging.WARNING)
    logging.getLogger("celery.worker.strategy").setLevel(logging.WARNING)


@worker_ready.connect
def quiet_a_settled_deprecation(**_kwargs):
    """Celery nags on every lost broker connection that the default of
    worker_cancel_long_running_tasks_on_connection_loss will change; settings set it. Here,
    because Celery's logging setup asks to see all of its deprecation warnings."""
    warnings.filterwarnings(
        "ignore", r"(?s).*worker_cancel_long_running_tasks_on_connection_loss",
        CPendingDeprecationWarning)


@worker_ready.connect
def report_this_storage_node(**_kwargs):
    """Each worker is a storage node: it registers with its pool, then reports on a
    heartbeat (importer.nodeagent). It consumes its node's queue and the shared one
    (CELERY_TASK_QUEUES in settings)."""
    from importer import nodeagent

    nodeagent.start()


@worker_shutdown.connect
def stop_this_storage_node(**_kwargs):
    from importer import nodeagent

    nodeagent.stop()


class RedisChannel(kombu_redis.Channel):
    def _connparams(self, asynchronous=False):
        # When Redis goes away, the worker collects its broken connection (which detaches
        # the transport: client = None) and then closes it. Closing the task channel
        # restores its unacknowledged messages (with task_acks_late, the copy in flight),
        # which needs a new Redis client built from the detached transport: kombu raised
        # AttributeError ('NoneType' object has no attribute 'hostname'), which Celery
        # does not expect there, and the worker exited. As a connection error it is what
        # it is, Celery ignores it while closing, and the worker reconnects. Redis still
        # holds the message as unacknowledged; the lease and the reaper recover the copy.
        if self.connection.client is None:
            raise RedisConnectionError("the connection to Redis was closed")
        return super()._connparams(asynchronous=asynchronous)


class RedisTransport(kombu_redis.Transport):
    """kombu's Redis transport, with a worker that survives a broker outage (see above).

    Chosen by CELERY_BROKER_TRANSPORT in settings for redis:// and rediss:// brokers."""

    Channel = RedisChannel


class FilesystemChannel(kombu_filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        # kombu creates the message file, then locks and writes it; a worker polling the
        # folder may take the file in between (its lock is advisory, a rename ignores it),
        # read nothing and die of a JSONDecodeError (seen with 8 imports on 2 nodes). Here
        # the message is written under a name no worker picks up, then renamed into place
        # at once.
        name = f"{round(time.monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = f"{final}.part"
        try:
            with open(partial, "wb") as message:
                message.write(dumps(payload).encode())
            os.replace(partial, final)
        except OSError as error:
            raise ChannelError(
                f"Cannot add file {final!r} to directory") from error


class FilesystemTransport(kombu_filesystem.Transport):
    """kombu's filesystem transport (the embedded broker), with messages that appear
    whole (see above). Chosen by CELERY_BROKER_TRANSPORT in settings."""

    Channel = FilesystemChannel
