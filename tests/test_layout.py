"""The package's shape: imports point one way through the stages, with no circle (imports inside
functions included), every user-facing error shares one base, and modules stay small."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest

import wavtune
from wavtune.errors import WavtuneError

PACKAGE = Path(wavtune.__file__).parent

# The stages, lowest first: a module may import its own stage and the stages below it, never one
# above. Top-level modules sit where their imports put them (tasks reads the metric registry).
STAGES: tuple[tuple[str, ...], ...] = (
    ("wavtune", "wavtune.constants", "wavtune.errors"),
    ("wavtune.data",),
    ("wavtune.corpora",),
    ("wavtune.synth",),
    ("wavtune.decode",),
    ("wavtune.scoring",),
    ("wavtune.tasks",),
    ("wavtune.config",),
    ("wavtune.checks",),
    ("wavtune.run",),
    ("wavtune.model",),
    ("wavtune.infer",),
    ("wavtune.train",),
    ("wavtune.card",),
    ("wavtune.deploy",),
    ("wavtune.cli",),
)
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    parts = ("wavtune", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def stage_of(module: str) -> int:
    """Index of the stage ``module`` belongs to (the longest matching prefix)."""
    best, rank = -1, -1
    for i, prefixes in enumerate(STAGES):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    assert rank >= 0, f"{module} is in no stage: add it to STAGES"
    return rank


def imported(module: str) -> Iterator[str]:
    """Every wavtune module ``module`` imports, at the top or inside functions."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                       for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:  # `import wavtune.x.y` -> the module
                target = target.rpartition(".")[0]
            if target and target != module:
                yield target


GRAPH = {m: sorted(set(imported(m))) for m in MODULES}


def test_lower_stages_never_import_higher_ones() -> None:
    wrong = [f"{m} (stage {stage_of(m)}) imports {d} (stage {stage_of(d)})"
             for m, deps in GRAPH.items() for d in deps if stage_of(d) > stage_of(m)]
    assert not wrong, "\n".join(wrong)


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in GRAPH:
        if v not in index:
            visit(v)
    return found


def test_no_import_circles() -> None:
    assert _cycles() == []


def test_the_layout_check_sees_circles_and_upward_imports() -> None:
    # the checks above would pass vacuously if the import parser found nothing
    assert "wavtune.data.vocab" in GRAPH["wavtune.data.dataset"]
    assert "wavtune.decode.beam" in GRAPH["wavtune.decode.registry"]
    assert stage_of("wavtune.data.text") < stage_of("wavtune.model.build") < stage_of("wavtune.cli")
    assert stage_of("wavtune.config.sections") == stage_of("wavtune.config")


@pytest.mark.parametrize("low", ["wavtune.data", "wavtune.scoring"])
def test_data_and_scoring_import_no_model_or_training_code(low: str) -> None:
    heavy = ("wavtune.model", "wavtune.train", "wavtune.card", "wavtune.deploy", "wavtune.cli")
    wrong = [f"{m} -> {d}" for m, deps in GRAPH.items() if m.startswith(low)
             for d in deps if d.startswith(heavy)]
    assert not wrong


def test_every_error_class_derives_from_wavtune_error() -> None:
    import importlib

    outside = []
    for name in MODULES:
        module = importlib.import_module(name)
        for cls_name, cls in inspect.getmembers(module, inspect.isclass):
            if (cls.__module__ == name and issubclass(cls, Exception)
                    and not issubclass(cls, WavtuneError)):
                outside.append(f"{name}.{cls_name}")
    assert not outside, f"derive these from wavtune.errors.WavtuneError: {outside}"


def test_modules_and_functions_stay_small() -> None:
    too_long = []
    for name, path in MODULES.items():
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}.{node.name}: {length} lines")
    assert not too_long, "split these: " + "; ".join(too_long)


def _readme_layout() -> dict[str, set[str]]:
    """The README's layout map: folder -> the module names it lists."""
    text = (PACKAGE.parents[1] / "README.md").read_text(encoding="utf-8")
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    listed: dict[str, set[str]] = {}
    folder = "."
    for line in block.splitlines():
        words = line.split()
        if not words or line.startswith(("src/", "recipes/", "benchmarks/")):
            continue
        if line.startswith("  ") and not line.startswith("   ") and words[0].endswith("/"):
            folder, words = words[0].rstrip("/"), words[1:]
        elif line.startswith("  ") and not line.startswith("   "):
            folder = "."
        if line.startswith(" " * 26):  # the description column
            continue
        listed.setdefault(folder, set()).update(w.removesuffix(".py") for w in words)
    return listed


def test_readme_layout_lists_every_module() -> None:
    listed = _readme_layout()
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        folder = str(rel.parent) if rel.parent != Path(".") else "."
        if path.stem != "__init__" and path.stem not in listed.get(folder, set()):
            missing.append(str(rel))
    assert not missing, f"README's Layout map does not list: {missing}"


def _family_branches(tree: ast.AST, families: set[str], objectives: set[str]) -> list[int]:
    """Lines of ``tree`` that compare with a family name, or key a table by one. A name that is
    also a pre-training objective (``hubert``) counts only beside ``model_type`` or ``arch``."""
    def constants(node: ast.expr) -> list[object]:
        items = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
        return [c.value for c in items if isinstance(c, ast.Constant)]

    lines = []
    only_families = families - objectives
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            about_family = any(w in ast.unparse(o) for o in operands
                               for w in ("model_type", "arch"))
            named = {v for o in operands for v in constants(o) if v in families}
            if named - objectives or (named and about_family):
                lines.append(node.lineno)
        elif isinstance(node, ast.Dict):
            if {v for k in node.keys if k is not None for v in constants(k)} & only_families:
                lines.append(node.lineno)
    return lines


def test_only_the_family_registry_branches_on_the_model_family() -> None:
    """Code asks the registry (model/families.py) what a family reads, freezes, exports or
    supports; a comparison with a family name anywhere else is a branch the registry should own."""
    import typing

    from wavtune.config.sections import PretrainConfig
    from wavtune.model.families import FAMILIES

    objectives = set(typing.get_args(typing.get_type_hints(PretrainConfig)["objective"]))
    branches = [f"{name}:{line}" for name, path in MODULES.items()
                if name != "wavtune.model.families"
                for line in _family_branches(ast.parse(path.read_text(encoding="utf-8")),
                                             set(FAMILIES), objectives)]
    assert not branches, f"ask wavtune.model.families instead of branching here: {branches}"


def test_the_family_branch_check_sees_a_branch() -> None:
    families, objectives = {"wav2vec2", "hubert"}, {"hubert", "contrastive"}
    for code in ('if config.model_type != "wav2vec2": pass', 'x = arch in ("hubert", "x")',
                 'TABLE = {"wav2vec2": 1}'):
        assert _family_branches(ast.parse(code), families, objectives) == [1], code
    for code in ('if pre.objective == "hubert": pass', 'KEYS = {"hubert": 1}'):
        assert not _family_branches(ast.parse(code), families, objectives), code
