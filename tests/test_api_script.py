"""README's automation example, run as written with curl and a token against a live server
and a real worker: a volume and a group reach Import Completed with their bytes intact."""

import os
import re
import subprocess
from pathlib import Path

import pytest
from knox.models import AuthToken

from importer import services
from importer.models import ImportEvent, ImportSession, Volume
from tests.conftest import MiB, sha256_of, write_random

pytestmark = pytest.mark.integration
README = Path(__file__).resolve().parent.parent / "README.md"


def automation_example() -> str:
    match = re.search(r"<!-- automation-example -->\n```bash\n(.*?)```", README.read_text(),
                      re.DOTALL)
    assert match, "README lost its automation example"
    return match.group(1)


def test_readmes_curl_script_imports_a_volume_and_a_group(source_root, live_worker,
                                                          live_server, operator, tmp_path):
    array = source_root / "demo"
    sources = {"web01.img": 12 * MiB, "cg-finance/ledger.img": 8 * MiB,
               "cg-finance/journal.img": 4 * MiB}
    for name, size in sources.items():
        write_random(array / name, size)
    services.create_remote_system(name="demo-array", driver_settings={"path": str(array)},
                                  actor=services.SYSTEM)  # the script discovers it
    _, token = AuthToken.objects.create(operator)
    script = tmp_path / "import-demo.sh"
    script.write_text(automation_example())

    result = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, timeout=300,
        env={**os.environ, "FERRY_URL": live_server.url, "FERRY_TOKEN": token,
             "FERRY_RUN": "ci"})

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("Import_Completed, deleted") == 2
    assert not ImportSession.objects.exists()  # deleted by the script
    for name in sources:
        source = array / name
        destination = Volume.objects.get(name__contains=Path(name).stem)
        assert sha256_of(destination.location) == sha256_of(source), name
        assert destination.is_read_only is False
    actions = set(ImportEvent.objects.filter(actor_name=operator.username)
                  .values_list("action", flat=True))
    assert {"discover_requested", "create", "enable_destination_volume", "start_copy", "cutover",
            "delete"} <= actions
