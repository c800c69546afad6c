"""Every third-party module a part of ifrt imports is installed by what the README says that part needs:
the runtime by `pip install ifrt` (its optional backends by their extras), training and evaluation by
`ifrt[train]`, export by `ifrt[export]`."""

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]
# Distributions of modules that may not be installed here (TensorRT's Python stack), by import name.
NOT_INSTALLED = {"cuda": "cuda-python", "tensorrt": "tensorrt"}


def distributions(requirements: list[str]) -> set[str]:
    """Normalized distribution names of requirement strings ("PyYAML>=6" -> "pyyaml")."""
    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def imported_distributions(part: str) -> dict[str, str]:
    """{distribution: a file importing it} for the third-party imports of the source folder `part`, function-level
    imports included."""
    installed = packages_distributions()
    found = {}
    for path in sorted((ROOT / part).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top in ("ifrt", "__future__"):
                    continue
                for name in installed.get(top) or [NOT_INSTALLED.get(top, top)]:
                    found.setdefault(name.lower().replace("_", "-"), str(path.relative_to(ROOT)))
    return found


@pytest.fixture(scope="module")
def project():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


@pytest.mark.parametrize(("part", "extras"), [
    ("runtime", ("trt", "train")),  # trt: the TensorRT backend; train: torch for the torch backend
    ("train", ("train",)),
    ("export", ("export",)),
])
def test_each_part_imports_only_what_its_install_provides(project, part, extras):
    provided = distributions(project["dependencies"])
    for extra in extras:
        provided |= distributions(project["optional-dependencies"][extra])
    missing = {dist: path for dist, path in imported_distributions(part).items() if dist not in provided}
    assert missing == {}
