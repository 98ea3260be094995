"""The layers of ../shared/DESIGN.md hold: each module imports only its own layer or those below it (imports
inside functions included), there is no import cycle, and the plots load without the training loop."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "labkit"

# lowest first; a module's layer is that of the longest prefix listed
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("labkit.errors", "labkit.registry", "labkit.lazy", "labkit.events", "labkit.config", "labkit.fields",
              "labkit.validate", "labkit.activations", "labkit.initializers", "labkit.models", "labkit.optimizers",
              "labkit.schedules", "labkit.precision", "labkit.data", "labkit.search.space")),
    ("core", ("labkit.runs", "labkit.training", "labkit.search.storage", "labkit.search.run", "labkit.search")),
    ("analysis", ("labkit.runlog", "labkit.probe_history", "labkit.demos", "labkit.concepts", "labkit.diagnosis",
                  "labkit.babysit",
                  "labkit.ensemble",
                  "labkit.search.analysis", "labkit.transfer")),
    ("plots", ("labkit.plots",)),
    ("top", ("labkit.cli", "labkit.widgets", "labkit.__main__", "labkit")),
]


def layer_of(module: str) -> int:
    best, rank = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, rank = len(p), i
    assert rank >= 0, f"{module} has no layer: add it to LAYERS"
    return rank


def modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = modules()


def _target(name: str) -> str:
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def imports_of(module: str) -> set[str]:
    """labkit modules `module` imports anywhere in its body (not under TYPE_CHECKING), with their parent packages."""
    path = MODULES[module]
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for ch in ast.iter_child_nodes(node):
            if isinstance(ch, ast.If) and "TYPE_CHECKING" in ast.unparse(ch.test):
                continue
            if isinstance(ch, ast.Import):
                found.update(a.name for a in ch.names if a.name.startswith("labkit"))
            elif isinstance(ch, ast.ImportFrom):
                if ch.level:
                    base = module.split(".") if is_pkg else module.split(".")[:-1]
                    base = base[:len(base) - (ch.level - 1)]
                    name = ".".join(base + ([ch.module] if ch.module else []))
                else:
                    name = ch.module or ""
                if name.startswith("labkit"):
                    found.update(f"{name}.{a.name}" if f"{name}.{a.name}" in MODULES else name for a in ch.names)
            visit(ch)

    visit(ast.parse(path.read_text()))
    own = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}  # packages already running
    out = set()
    for name in found:
        t = _target(name)
        parts = t.split(".")
        out.update(".".join(parts[:i]) for i in range(2, len(parts) + 1))  # importing a.b.c runs a.b too
    out -= own
    out.discard(module)
    out.discard("labkit")  # the root package is the public facade; it loads its names lazily
    return out


GRAPH = {m: imports_of(m) for m in MODULES}


def test_every_module_has_a_layer():
    for m in MODULES:
        layer_of(m)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_the_layers(module):
    mine = layer_of(module)
    up = sorted(t for t in GRAPH[module] if layer_of(t) > mine)
    assert not up, f"{module} ({LAYERS[mine][0]}) imports from a higher layer: " + ", ".join(
        f"{t} ({LAYERS[layer_of(t)][0]})" for t in up)


def test_nothing_below_the_top_imports_the_cli_or_the_widgets():
    for m, targets in GRAPH.items():
        if layer_of(m) < len(LAYERS) - 1:
            assert not {t for t in targets if t.startswith(("labkit.cli", "labkit.widgets"))}, m


def test_no_import_cycles():
    seen: dict[str, int] = {}
    stack: list[str] = []

    def walk(m: str) -> None:
        seen[m] = 1
        stack.append(m)
        for t in sorted(GRAPH.get(m, ())):
            if seen.get(t) == 1:
                cycle = stack[stack.index(t):] + [t]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if t not in seen:
                walk(t)
        stack.pop()
        seen[m] = 2

    for m in sorted(GRAPH):
        if m not in seen:
            walk(m)


def test_the_checker_sees_a_violation(tmp_path, monkeypatch):
    """A plots module importing the CLI would be caught (so the tests above can fail)."""
    fake = PKG / "plots" / "training.py"
    monkeypatch.setitem(MODULES, "labkit.plots.fake", tmp_path / "fake.py")
    (tmp_path / "fake.py").write_text("def f():\n    from ..cli import main\n")
    assert "labkit.cli" in imports_of("labkit.plots.fake") and layer_of("labkit.cli") > layer_of("labkit.plots.fake")
    assert fake.exists()


@pytest.fixture(scope="module")
def loaded_after() -> dict[str, set[str]]:
    """labkit's modules in sys.modules of a fresh interpreter after `import labkit.plots`, then after the public
    API's import on top of it (one subprocess for both: each costs a torch import, ~2 s)."""
    code = ("import sys\n"
            "def mods(): return ' '.join(m for m in sys.modules if m.startswith('labkit'))\n"
            "import labkit.plots\n"
            "print(mods())\n"
            "from labkit import Config, train, load_run, list_runs, schedule_curve, TrainHook, RunLog\n"
            "assert callable(train) and Config().validate()\n"
            "print(mods())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    plots, api = out.stdout.splitlines()
    return {"plots": set(plots.split()), "api": set(api.split())}


def test_plots_load_without_the_training_loop_cli_or_widgets(loaded_after):
    loaded = loaded_after["plots"]
    assert "labkit.plots" in loaded
    assert not {m for m in loaded if m.startswith(("labkit.training.loop", "labkit.cli", "labkit.widgets",
                                                   "labkit.search.run"))}, sorted(loaded)


def test_public_api_still_imports(loaded_after):
    assert "labkit.training.loop" in loaded_after["api"]
