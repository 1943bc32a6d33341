"""The folders are the pipeline's stages: each module imports only its own stage and the
stages below it, deferred imports included, and a stage's __init__.py imports nothing."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mlmprep"
STAGES = ("core", "input", "text", "algorithm", "formats", "pipeline", "outputs", "cli")
# beside the stages: the package itself (its version), bundled data, and the public
# `mlmprep.torch` name for the PyTorch API that lives in outputs
LEVELS = {"__init__": -1, "data": -1, **{s: i for i, s in enumerate(STAGES)}, "torch": len(STAGES)}


def _level(module: str) -> int:
    parts = module.split(".")
    return LEVELS[parts[1]] if len(parts) > 1 else -1


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(source: str, package: str) -> list[tuple[int, str]]:
    """(line, module) of every mlmprep module a file of `package` imports, anywhere in it."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
    return [(line, name) for line, name in found if name.split(".")[0] == "mlmprep"]


def _imports_of(path: Path) -> list[tuple[int, str]]:
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path.parent)
    return _imported(path.read_text(encoding="utf-8"), package)


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_belongs_to_a_known_stage():
    top_level = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in MODULES}
    assert top_level <= set(LEVELS), top_level - set(LEVELS)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_module_imports_no_higher_stage(path):
    own = _level(_module_name(path))
    upward = [f"line {line}: {name}" for line, name in _imports_of(path) if _level(name) > own]
    assert not upward, f"{path.relative_to(PACKAGE)} imports a higher stage: {upward}"


INITS = sorted(p for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE)


@pytest.mark.parametrize("init", INITS, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_stage_or_room_init_imports_nothing(init):
    tree = ast.parse(init.read_text(encoding="utf-8"))
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    assert not imports, f"{init.relative_to(PACKAGE)} imports {len(imports)} things"


def test_the_stages_are_folders_and_each_has_an_init():
    assert all((PACKAGE / stage / "__init__.py").is_file() for stage in STAGES)


def test_outputs_read_the_on_disk_formats_never_the_pipeline():
    """What a finished build or tokenize output looks like lives in formats/, so the
    readers of outputs/ do not depend on how the pipeline makes it."""
    readers = [p for p in MODULES if p.is_relative_to(PACKAGE / "outputs")]
    found = [
        f"{p.relative_to(PACKAGE)} line {line}: {name}"
        for p in readers
        for line, name in _imports_of(p)
        if name.startswith("mlmprep.pipeline")
    ]
    assert not found, found


def test_the_checker_sees_upward_imports_absolute_relative_and_deferred():
    source = (
        "import numpy\n"
        "from mlmprep.pipeline import build\n"
        "from ..outputs.stats import x\n"
        "def later():\n"
        "    import mlmprep.cli.main\n"
    )
    names = [name for _, name in _imported(source, "mlmprep.core")]
    assert names == ["mlmprep.pipeline", "mlmprep.outputs.stats", "mlmprep.cli.main"]
    assert all(_level(name) > _level("mlmprep.core.fake") for name in names)
