"""The lessons (notebooks/lessons/*.ipynb): up to date with _build.py, the required parts, public names only, and
every lesson executed top to bottom in fast mode (LABKIT_FAST=1) in one kernel per xdist worker."""
from __future__ import annotations

import ast
import json
import importlib
import importlib.util
import os
import re
import sys
import time
from pathlib import Path

import pytest

from conftest import cifar_dir
from labkit.widgets.notes import is_error_html

ROOT = Path(__file__).resolve().parents[1]
LESSONS = ROOT / "notebooks" / "lessons"
NOTEBOOKS = sorted(LESSONS.glob("[0-9][0-9]-*.ipynb"))
README = (ROOT / "README.md").read_text()
TOPICS = ["activations", "preprocessing", "initialization", "batchnorm", "babysitting", "search", "optimizers",
          "schedules", "regularization", "ensembles", "transfer", "scale"]



def _read(path: Path):
    """The notebook as nbformat reads it (imported here: nbformat's jsonschema costs ~1.3 s, only runs need it)."""
    nbformat = pytest.importorskip("nbformat")
    return nbformat.read(path, as_version=4)


def _sources(path: Path, kind: str) -> str:
    """The source of every `kind` cell ("markdown" or "code"), joined by newlines (the .ipynb read as JSON)."""
    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(c["source"]) if isinstance(c["source"], list) else c["source"]
                     for c in cells if c["cell_type"] == kind)


def _build_module():
    spec = importlib.util.spec_from_file_location("lessons_build", LESSONS / "_build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_one_lesson_per_topic_in_order():
    assert [p.stem.split("-", 1)[1] for p in NOTEBOOKS] == TOPICS
    assert [int(p.stem[:2]) for p in NOTEBOOKS] == list(range(1, len(TOPICS) + 1))


def test_notebooks_are_what_build_writes():
    build = _build_module()
    for name, cells in build.LESSONS.items():
        path = LESSONS / f"{name}.ipynb"
        assert path.read_text() == build.text(build.build(name, cells)), \
            f"{path.name} differs from notebooks/lessons/_build.py; run: python notebooks/lessons/_build.py"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_lesson_has_the_required_parts(path):
    md, src = _sources(path, "markdown"), _sources(path, "code")
    claim = re.search(r"## The claim\n\n(.+?)(?:\n## |\Z)", md, re.S)
    assert claim, "a '## The claim' section"
    sentences = re.findall(r"[.!?](?:\s|$)", claim.group(1).strip())
    assert 2 <= len(sentences) <= 4, f"the claim in two or three sentences, got {len(sentences)}"
    assert "demo_widget(" in src, "a widget that varies the key choice"
    assert re.search(r"## What to look for\n\n\S", md), "a 'What to look for' section"
    tries = md.split("## Try this", 1)
    assert len(tries) == 2, "a 'Try this' section"
    answers = tries[1].count("<details><summary>Answer</summary>")
    assert 2 <= answers <= 3 and tries[1].count("</details>") == answers, "two or three exercises, answers folded"
    assert "input(" not in src, "no input(): the lesson must work as a Voila app"


# -- public names only -----------------------------------------------------------------------------------------------
def _documented(module: str, name: str) -> bool:
    """`name` is public in `module`: in its __all__ when it has one, else documented in README.md."""
    if name.startswith("_"):
        return False
    mod = importlib.import_module(module)
    if hasattr(mod, "__all__"):
        return name in mod.__all__
    return bool(re.search(rf"from {re.escape(module)} import [^\n]*\b{name}\b", README)
                or re.search(rf"{re.escape(module)}\.{name}\b", README))


def public_problems(source: str) -> list[str]:
    """Names a lesson's code takes from labkit that are not public (or modules README does not document)."""
    problems: list[str] = []
    aliases: dict[str, str] = {}
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("labkit"):
                    if a.name != "labkit" and a.name not in README:
                        problems.append(f"import {a.name}: not a documented module")
                    aliases[a.asname or a.name] = a.name
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("labkit"):
            if node.level or (node.module != "labkit" and node.module not in README):
                problems.append(f"from {node.module}: not a documented module")
                continue
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                if importlib.util.find_spec(node.module) and _is_module(sub):
                    if sub not in README and sub.replace("labkit.", "", 1) not in ("plots",):
                        problems.append(f"from {node.module} import {a.name}: not a documented module")
                    aliases[a.asname or a.name] = sub
                elif not _documented(node.module, a.name):
                    problems.append(f"from {node.module} import {a.name}: not public")
    inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or id(node) in inner:
            continue
        chain, root = [], node  # a.b.c -> root a, chain [b, c]
        while isinstance(root, ast.Attribute):
            chain.insert(0, root.attr)
            root = root.value
        if not (isinstance(root, ast.Name) and root.id in aliases):
            continue
        module = aliases[root.id]
        for attr in chain:
            if _is_module(f"{module}.{attr}"):
                module = f"{module}.{attr}"
                if module not in README:
                    problems.append(f"{module}: not a documented module")
                    break
            else:
                if not _documented(module, attr):
                    problems.append(f"{module}.{attr}: not public")
                break
    return problems


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def test_public_check_catches_private_names():
    assert public_problems("from labkit.lessons import sizes\nfrom labkit import plots\nplots.learning_curves") == []
    assert public_problems("from labkit.concepts import _train") == ["from labkit.concepts import _train: not public"]
    assert public_problems("from labkit.plots import lr_curve, _lines_below")[0].endswith("_lines_below: not public")
    assert public_problems("from labkit import plots\nplots.training.RUN_COLORS(1)") != []
    assert public_problems("import labkit.plots\nlabkit.plots.learning_curves(x).savefig('a')") == []
    assert public_problems("import labkit.widgets.live") == ["import labkit.widgets.live: not a documented module"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_lesson_uses_only_public_names(path):
    assert public_problems(_sources(path, "code")) == []


# -- fast mode, executed ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    """One kernel for this worker's lessons: LABKIT_FAST=1, this interpreter, its cwd a temporary folder."""
    jupyter_client = pytest.importorskip("jupyter_client")
    pytest.importorskip("nbclient")
    env = dict(os.environ, LABKIT_FAST="1", MPLBACKEND="agg",
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    if env.get("LABKIT_DATA"):  # the kernel starts in a temporary folder: a relative data path must become absolute
        env["LABKIT_DATA"] = str(Path(env["LABKIT_DATA"]).resolve())
    cwd = tmp_path_factory.mktemp("lesson-kernel")
    km, kc = jupyter_client.manager.start_new_kernel(kernel_name="python3", env=env, cwd=str(cwd))
    yield km, kc, cwd
    kc.stop_channels()
    km.shutdown_kernel(now=True)


def _images(nb) -> tuple[int, int]:
    """PNG outputs in the cells, and in the Output widgets (where demo_widget puts its figure)."""
    cells = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    widgets = sum("image/png" in o.get("data", {}) for m in state.values() if m.get("model_name") == "OutputModel"
                  for o in m["state"].get("outputs", []))
    return cells, widgets


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_lesson_runs_in_fast_mode(path, kernel):
    import nbclient
    import nbformat

    nb = _read(path)
    if nb.metadata.get("labkit", {}).get("data") == "cifar10" and cifar_dir() is None:
        pytest.skip("CIFAR-10 not found under $LABKIT_DATA (CI sets LABKIT_DATA=../shared/data)")
    km, kc, cwd = kernel
    before = set(os.listdir(LESSONS)), set(os.listdir(cwd))
    nb.cells.insert(0, nbformat.v4.new_code_cell("%reset -f"))  # the previous lesson's names are gone
    client = nbclient.NotebookClient(nb, km=km, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(cwd)}})
    t0 = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - t0
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.get("output_type") == "error"]
    assert not errors, "\n".join(e["ename"] + ": " + e["evalue"] for e in errors)
    cells, widgets = _images(nb)
    assert widgets >= 1, "the lesson's widget shows its figure at once"
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    statuses = [m["state"].get("value", "") for m in state.values() if m.get("model_name") == "HTMLModel"]
    assert any("done in" in s for s in statuses) and not any(is_error_html(s) for s in statuses), statuses
    assert (set(os.listdir(LESSONS)), set(os.listdir(cwd))) == before, "a lesson wrote files outside its run store"
    print(f"{path.stem}: {seconds:.1f} s, {cells} figures in cells, {widgets} in the widget")
