"""Every dependency in pyproject.toml is used: imported, named in settings or the build, or
one of the few that are used without being named (listed here, each with why)."""

import re
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
USED_UNNAMED = {
    "psycopg": "the PostgreSQL driver Django loads for a postgres:// DATABASE_URL",
    "pytest-django": "a pytest plugin (DJANGO_SETTINGS_MODULE in pyproject)",
    "pytest-playwright": "a pytest plugin: the browser tests' page fixture",
}


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower()


def _sources() -> str:
    files = [*ROOT.glob("config/**/*.py"), *ROOT.glob("importer/**/*.py"),
             *ROOT.glob("tests/**/*.py"), ROOT / "Makefile", ROOT / "Dockerfile",
             ROOT / "docker-compose.yml", ROOT / ".ci" / "run", ROOT / "manage.py"]
    return "\n".join(path.read_text() for path in files if path.is_file())


def test_every_dependency_is_used():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    modules: dict[str, set[str]] = {}
    for module, distributions in packages_distributions().items():
        for distribution in distributions:
            modules.setdefault(distribution.lower().replace("_", "-"), set()).add(module)
    sources = _sources()
    unused = [name for name in map(_requirement_name, requirements)
              if name not in USED_UNNAMED and not any(
                  re.search(rf"\b{re.escape(module)}\b", sources)
                  for module in modules.get(name, {name.replace("-", "_")}))]
    assert unused == []
