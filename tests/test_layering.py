"""The packages import one way (README, Architecture): every import of every module, lazy ones included.

A package may import only packages of a lower layer. That makes the graph acyclic by construction, and
spells out the rules that matter: the encoder imports no other loclip package; no model imports a trainer
or the training runtime (``mllm`` imports none of ``pretrain``, ``finetune``, ``training``); ``pretrain``
imports none of ``mllm``, ``eval``, ``label``, ``demo``; nothing imports ``demo`` or the commands (``cli``).
"""

from __future__ import annotations

import ast
import graphlib
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# layer of each package (its folder); an import must go to a strictly lower layer
LAYERS = {
    "core": 0,
    "encoder": 1,
    "shards": 1,
    "training": 2,
    "mllm": 2,
    "synth": 3,
    "pretrain": 4,
    "finetune": 4,
    "label": 5,
    "eval": 5,
    "cli": 6,
    "demo": 6,
}


def module_name(path: Path) -> str:
    """``pretrain/data/loader.py`` → ``loclip.pretrain.data.loader`` (``__init__`` → the package)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["loclip", *parts])


def imported_modules(source: str, module: str, is_package: bool) -> set[str]:
    """Every ``loclip.*`` module ``source`` imports: top-level and inside functions, relative imports resolved,
    and string targets of ``importlib.import_module``/``__import__``."""
    found: set[str] = set()
    package = module if is_package else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)  # `from loclip import mllm`
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.add(node.args[0].value)
    return {m for m in found if m.startswith("loclip.")}


def alias_target(source: str) -> str | None:
    """The new module an old-path stub stands for (``alias_module(__name__, "loclip.x.y")``), else ``None``."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "alias_module" and len(node.args) == 2:
            target = node.args[1]
            if isinstance(target, ast.Constant) and isinstance(target.value, str):
                return target.value
    return None


def package_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def modules() -> dict[str, Path]:
    """``{module name: file}`` of every module of every package."""
    return {module_name(path): path for package in LAYERS for path in sorted((ROOT / package).rglob("*.py"))}


def aliases() -> dict[str, str]:
    """``{old module: new module}`` of the stubs that keep a moved module's old path for one release. They import
    their new module by name at run time, whatever its layer: that is their job, so they are not arrows."""
    return {m: t for m, path in modules().items() if (t := alias_target(path.read_text())) is not None}


def arrows() -> dict[tuple[str, str], list[str]]:
    """``{(from package, to package): [importing modules]}`` over the whole code base (old-path stubs aside)."""
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    stubs = aliases()
    for module, path in modules().items():
        if module in stubs:
            continue
        package = package_of(module)
        for target in imported_modules(path.read_text(), module, path.name == "__init__.py"):
            other = package_of(target)
            if other is not None and other != package:
                found[(package, other)].append(f"{module} -> {target}")
    return found


def wrong_way(graph: dict[tuple[str, str], list[str]]) -> dict[tuple[str, str], list[str]]:
    """The arrows of ``graph`` that do not go to a strictly lower layer."""
    return {arrow: modules for arrow, modules in graph.items() if LAYERS[arrow[1]] >= LAYERS[arrow[0]]}


def test_every_package_folder_has_a_layer() -> None:
    # configs/ is a package only to install its recipe files with loclip (package data); it holds no code
    folders = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench", "scripts", "configs"}
    assert folders == set(LAYERS)


def test_imports_go_down_the_layers_only() -> None:
    wrong = wrong_way(arrows())
    assert not wrong, "imports against the layering (README, Architecture):\n" + "\n".join(
        f"  {a} -> {b}: {', '.join(m)}" for (a, b), m in wrong.items()
    )


def test_the_package_graph_has_no_cycle_and_the_named_rules_hold() -> None:
    graph = arrows()
    sorter = graphlib.TopologicalSorter()
    for a, b in graph:
        sorter.add(a, b)
    sorter.prepare()  # raises CycleError on a cycle
    targets = {a: {b for (x, b) in graph if x == a} for a in LAYERS}
    assert targets["encoder"] <= {"core"}  # the encoder imports no other loclip package but the kernel
    assert targets["core"] == set()  # the kernel imports no other loclip package
    assert "pretrain" not in targets["mllm"]  # a model never imports a trainer ...
    assert "finetune" not in targets["mllm"]  # ... its own included
    assert {a for a in LAYERS if "training" in targets[a]} <= {"pretrain", "finetune", "cli"}  # only trainers
    # (and the commands that run them) import the training runtime
    assert not targets["pretrain"] & {"mllm", "eval", "label", "demo", "cli"}
    assert not any({"demo", "cli"} & t for t in targets.values())


def test_old_path_stubs_only_alias_their_new_module() -> None:
    # a stub is skipped by arrows(): it must hold nothing else that could hide a wrong-way import
    stubs = aliases()
    assert "loclip.training.recipe" in stubs  # the reader sees them
    for module, target in stubs.items():
        tree = ast.parse(modules()[module].read_text())
        body = [n for n in tree.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
        assert len(body) == 2 and isinstance(body[0], ast.ImportFrom) and body[0].module == "loclip.core.moved", module
        assert target.startswith("loclip.") and target != module


def test_print_the_measured_graph(capsys: pytest.CaptureFixture) -> None:
    """The graph the README's Architecture diagram draws: each package and what it imports, top layer first."""
    graph = arrows()
    order = {p: (LAYERS[p], p) for p in LAYERS}
    lines = []
    for p in sorted(LAYERS, key=lambda p: (-LAYERS[p], p)):
        targets = sorted({b for (a, b) in graph if a == p}, key=order.get)
        lines.append(f"  layer {LAYERS[p]}  {p:<9} -> {', '.join(targets) or '-'}")
    with capsys.disabled():
        print("\nmeasured package graph (tests/test_layering.py):\n" + "\n".join(lines))
    assert len(lines) == len(LAYERS)


@pytest.mark.parametrize(
    "source, module, expected",
    [
        ("from . import checkpoint as c", "loclip.training.loop", {"loclip.training", "loclip.training.checkpoint"}),
        (
            "from ..losses import x",
            "loclip.pretrain.data.loader",
            {"loclip.pretrain.losses", "loclip.pretrain.losses.x"},
        ),
        ("def f():\n    from loclip.mllm import chat\n", "loclip.demo.app", {"loclip.mllm", "loclip.mllm.chat"}),
        ("import importlib\nimportlib.import_module('loclip.eval.plan')", "loclip.x", {"loclip.eval.plan"}),
        ("import torch, loclip.encoder", "loclip.x", {"loclip.encoder"}),
    ],
)
def test_the_import_reader_sees_relative_lazy_and_dynamic_imports(source: str, module: str, expected: set) -> None:
    assert imported_modules(source, module, is_package=False) == expected


def test_a_wrong_way_import_would_be_caught() -> None:
    # what test_imports_go_down_the_layers_only computes, on made-up modules: a model importing a trainer
    # lazily, the encoder importing the MLLM, and a legal arrow
    sources = {
        "loclip.mllm.modeling": "def forward():\n    from loclip.pretrain.losses import clip_loss\n",
        "loclip.encoder.modeling": "import loclip.mllm.chat\n",
        "loclip.eval.plan": "from loclip.encoder import boxes\n",
    }
    graph: dict[tuple[str, str], list[str]] = defaultdict(list)
    for module, source in sources.items():
        for target in imported_modules(source, module, is_package=False):
            graph[(package_of(module), package_of(target))].append(f"{module} -> {target}")
    assert set(wrong_way(graph)) == {("mllm", "pretrain"), ("encoder", "mllm")}
