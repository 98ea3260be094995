"""README.md runs as written: each section's Python blocks and shell commands, top to bottom, in an empty folder.

How budgets are made small: the test rewrites the README's numbers, never labkit's behaviour. Python blocks
get the literal substitutions in PY_FAST (each must occur in the README, so an edited README fails here instead
of silently training a full budget); CIFAR commands, `labkit demo init` and `labkit demo optimizers` get the flags
in CMD_FAST appended (argparse keeps the last value of a flag, so `--epochs 10 ... --epochs 1` trains one epoch);
every training command runs on one thread.
Commands on the 2-D sets and on the folder of 60 images the test makes run exactly as written. CIFAR-10 is
$LABKIT_DATA's training set with a 500-image test set, so the test evaluation ending each run is quick. Nothing
in labkit reads a test switch: what runs is what a reader runs, only shorter. (An environment variable that the
snippets honoured would be a second, untested path through the README.)

Each section (## or ### heading) runs in its own empty folder, so none leans on another's leftovers and the
sections spread over the suite's two workers; within a section, each Python block runs in a fresh namespace
(a block must import and define what it uses) and sees the files of the blocks above it; commands run
in-process through `labkit.cli.main` (the `labkit` script's entry point; tests/test_cli.py covers the script
itself in a subprocess). Skipped, with the reason: commands that start a server (`labkit lab`), need the
network (`pip install`, `--download`) or a database server (`postgresql://`), and lines with `...` standing for
elided flags.
"""
from __future__ import annotations

import re
import shlex
import signal
from pathlib import Path

import pytest

from conftest import cifar_dir
from labkit.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"

# (README text, what the test runs instead): budgets and thread counts only
PY_FAST = [
    ('"data.subset": 2000,', '"data.subset": 300, "data.val_size": 100, "train.epochs": 1, "train.threads": 1,'),
    ('"data.subset": 5000, "train.epochs": 3,',
     '"data.subset": 300, "data.val_size": 100, "train.epochs": 1, "train.threads": 1,'),
    ('"train.epochs": 15}', '"train.epochs": 1}'),
    # one process on the journal that two workers would share (a second process costs seconds of imports)
    ("trials=24, workers=2", 'trials=2, workers=1, storage="runs/search.journal"'),
    ("trials=12, workers=2", 'trials=1, workers=1, storage="runs/search.journal"'),
    ("iters=100)", "iters=10)"),
    ("run_checks(config)", "run_checks(config.replace(**SMALL), lr_options={'iters': 10})"),
    ("coarse_trials=12, fine_trials=8, coarse_epochs=3, fine_epochs=15,",
     "coarse_trials=2, fine_trials=1, coarse_epochs=1, fine_epochs=1, lr_options={'iters': 10},"),
    ("r = coarse_to_fine(config,", "r = coarse_to_fine(config.replace(**SMALL),"),
    ("r = lr_range_test(config,", "r = lr_range_test(config.replace(**SMALL),"),
    ("live = LiveDiagnosis(config)", "config = config.replace(**SMALL); live = LiveDiagnosis(config)"),
]
SMALL = {"data.subset": 300, "data.val_size": 100, "train.epochs": 1, "train.threads": 1}  # a CIFAR run in seconds

# flags appended to CIFAR commands, by sub-command (the 2-D sets and the folder run as written, on one thread)
_SMALL_FLAGS = ["--subset", "300", "--val-size", "100"]
CMD_FAST = {
    "train": [*_SMALL_FLAGS, "--epochs", "1"],
    "check": [*_SMALL_FLAGS, "--lr-iters", "10"],
    "search": [*_SMALL_FLAGS, "--trials", "2", "--epochs", "1", "--workers", "1"],
    "refine": ["--trials", "1", "--epochs", "1", "--workers", "1"],
    "recipe": [*_SMALL_FLAGS, "--coarse-trials", "2", "--fine-trials", "1", "--coarse-epochs", "1",
               "--fine-epochs", "1", "--workers", "1", "--lr-iters", "10"],
    "search-demo": ["--repeats", "50"],
    # forward-only and 2-D demos: fewer layers (panels to draw) and steps, the same code and figures
    "demo-init": ["--depth", "6", "--width", "200", "--n", "300"],
    "demo-optimizers": ["--steps", "60"],
}
AS_WRITTEN = ("spirals", "circles", "xor", "blobs", "folder")  # 2-D sets and the 60-image folder: already small

# exit statuses other than 0 that the README announces
EXPECTED_EXIT = {"labkit check --init large": {1}, "labkit diagnose": {0, 1}}


def skip_reason(tokens: list[str]) -> str | None:
    """Why a README command is not run here, or None."""
    line = " ".join(tokens)
    if tokens[:2] == ["labkit", "lab"]:
        return "starts a server"
    if "pip" in line or "venv" in line or "--download" in tokens:
        return "needs the network"
    if "postgresql://" in line:
        return "needs a PostgreSQL server (tests/test_search.py covers it with LABKIT_TEST_POSTGRES)"
    if "..." in tokens:
        return "'...' stands for elided flags"
    if tokens[0] != "labkit":
        return "not a labkit command"
    return None


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of each ``` block, in order."""
    return re.findall(r"^```(\w*)\n(.*?)^```", text, re.M | re.S)


def commands(body: str) -> list[list[str]]:
    """The commands of a shell block: continuation lines joined, comments dropped, split as a shell would."""
    out = []
    for line in body.replace("\\\n", " ").splitlines():
        if line.startswith(("labkit ", "python")):
            out.append(shlex.split(line, comments=True))
    return out


def fast(tokens: list[str]) -> list[str]:
    """The command with the smaller budget flags appended (CIFAR commands, two demos), on one torch thread.

    One thread, as every test here: the suite runs two workers on two cores, and two OpenMP threads on a busy
    core wait at every barrier (benchmarks/RESULTS.md measured 4x slower checks); the 2-D sets use one anyway.
    """
    data = tokens[tokens.index("--data") + 1] if "--data" in tokens else "cifar10"
    sub = tokens[1]
    if sub == "demo" and len(tokens) > 2 and f"demo-{tokens[2]}" in CMD_FAST:
        return tokens + CMD_FAST[f"demo-{tokens[2]}"]
    if sub == "search" and ("--report" in tokens or "--demo" in tokens):
        return tokens + (CMD_FAST["search-demo"] if "--demo" in tokens else [])
    if sub not in ("train", "check", "search", "recipe"):
        return tokens
    if sub == "search" and "--refine" in tokens:
        sub = "refine"
    return tokens + ["--threads", "1"] + ([] if data in AS_WRITTEN else CMD_FAST[sub])


def fill(tokens: list[str], store: Path) -> list[str]:
    """Placeholders (runs/<run>, runs/<a>, <run-id>) replaced by runs of the store, newest first."""
    from labkit import list_runs

    runs = list_runs(store)
    named = {"<run>": runs[-1]} if runs else {}
    if len(runs) >= 2:
        named.update({"<a>": runs[-2], "<b>": runs[-1]})
    out = []
    for t in tokens:
        for key, r in named.items():
            t = t.replace(f"runs/{key}", str(r.dir))
        out.append(t.replace("<run-id>", runs[-1].id) if runs else t)
    return out


def make_images(folder: Path, per_class: int = 20) -> None:
    """A folder of 60 small PNGs, 3 classes (what `--data folder --folder imgs` reads)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(["cat", "dog", "frog"]):
        (folder / name).mkdir(parents=True)
        for i in range(per_class):
            px = rng.integers(0, 80, (16, 16, 3), dtype=np.uint8) + 60 * c
            Image.fromarray(px.astype(np.uint8)).save(folder / name / f"{i}.png")


def small_cifar(root: Path, test: int = 500) -> Path:
    """$LABKIT_DATA's CIFAR-10 with a smaller test set: the training batches linked, the first `test` test images."""
    import pickle

    src = cifar_dir().resolve()  # LABKIT_DATA may be relative (the README's test command): links need an absolute target
    dst = root / src.name
    dst.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["batches.meta"]:
        (dst / name).symlink_to(src / name)  # the same training images, so subsets and checks are the real ones
    with open(src / "test_batch", "rb") as f:
        batch = pickle.load(f, encoding="latin1")
    (dst / "test_batch").write_bytes(pickle.dumps({"data": batch["data"][:test], "labels": batch["labels"][:test]}))
    return root


def run_command(tokens: list[str], capsys) -> tuple[int, str]:
    """Run `labkit ...` in-process; its exit status and stdout (signal handlers are put back afterwards)."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = main(tokens[1:])
    finally:
        for s, h in saved.items():
            signal.signal(s, h)
    return code, capsys.readouterr().out


def sections(text: str) -> dict[str, str]:
    """README text by section (## and ### headings), in order; the text before the first heading is dropped."""
    parts = re.split(r"^(#{2,3} .*)$", text, flags=re.M)
    return {title.lstrip("# ").strip(): body for title, body in zip(parts[1::2], parts[2::2])}


def runnable(body: str) -> bool:
    """Whether a section has a Python block or a command this test runs."""
    return any(lang == "python" or any(not skip_reason(t) for t in commands(b)) for lang, b in fenced_blocks(body))


SECTIONS = [t for t, body in sections(README.read_text()).items() if runnable(body)]


@pytest.fixture(scope="module")
def cifar_excerpt(tmp_path_factory) -> Path:
    """One small-test-set CIFAR folder per worker: its arrays are loaded once and cached for every section."""
    if cifar_dir() is None:
        pytest.skip("the README's examples use CIFAR-10; not found under $LABKIT_DATA (CI sets "
                    "LABKIT_DATA=../shared/data)")
    return small_cifar(tmp_path_factory.mktemp("data"))


def test_every_section_with_code_is_run():
    assert len(SECTIONS) >= 8 and {"Train from the command line", "Search", "Diagnosing a run"} <= set(SECTIONS)


@pytest.mark.parametrize("title", SECTIONS)
def test_readme_section_runs_as_written(title, cifar_excerpt, tmp_path, monkeypatch, capsys):
    """One section's blocks, top to bottom, in an empty folder (a section needs nothing from another)."""
    text = README.read_text()
    for old, _ in PY_FAST:
        assert old in text, f"PY_FAST is stale: the README no longer has {old!r}; update the table"
    body = sections(text)[title]
    for old, new in PY_FAST:
        body = body.replace(old, new)
    # CIFAR-10 with 500 test images: training sees the real set, and the test set's evaluation at the end of
    # each run takes milliseconds instead of seconds
    monkeypatch.setenv("LABKIT_DATA", str(cifar_excerpt))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)
    make_images(tmp_path / "imgs")
    store = tmp_path / "runs"
    skipped, outputs = [], []
    for lang, block in fenced_blocks(body):
        if lang == "python":
            exec(compile(block, f"README.md, {title}", "exec"), {"__name__": "__main__", "SMALL": SMALL})
            capsys.readouterr()
            continue
        for tokens in commands(block) if lang == "" else []:
            why = skip_reason(tokens)
            if why:
                skipped.append(why)
                continue
            code, out = run_command(fill(fast(tokens), store), capsys)
            line = " ".join(tokens)
            allowed = next((v for k, v in EXPECTED_EXIT.items() if line.startswith(k)), {0})
            assert code in allowed, f"`{line}` exited {code}, expected {allowed}:\n{out}"
            outputs.append((line, out))
    # what is skipped is exactly the kinds named in the module docstring
    assert {why.split(" (")[0] for why in skipped} <= {"needs the network", "'...' stands for elided flags",
                                                       "starts a server", "needs a PostgreSQL server"}
    shown = [b for lang, b in fenced_blocks(body) if lang == "" and b.startswith("Diagnosis of")]
    if shown:  # the diagnosis the README shows is the one its command gives (titles and evidence: the numbers)
        printed = next(out for line, out in outputs if line.startswith("labkit diagnose runs/<run>"))
        norm = lambda s: " ".join(s.split())  # noqa: E731
        for line in shown[0].splitlines():
            if line.startswith(("[", "  evidence:", "              ")):
                assert norm(line) in norm(printed), f"the README's diagnosis is stale: {line!r} not in\n{printed}"


def test_the_error_shown_in_the_readme_is_the_one_printed(capsys):
    shown = next(b for lang, b in fenced_blocks(README.read_text()) if lang == "" and b.startswith("labkit: error:"))
    assert main(["train", "--dropout", "1.5"]) == 2
    assert capsys.readouterr().err.strip() == shown.strip()


def test_the_readme_test_command_is_what_ci_runs():
    ci = (README.parent / ".ci" / "run").read_text()
    blocks = [b.strip() for lang, b in fenced_blocks(README.read_text()) if lang == ""]
    test_cmd = next(b for b in blocks if b.endswith("-m pytest"))
    # .ci/run installs the same pins in the same fresh venv, then runs the README's last step as written
    assert "pip install -q torch==2.14.1 torchvision==0.29.1" in ci and "pip install -q -e '.[dev]'" in ci
    assert test_cmd.split(" && ")[-1] in ci and "torch==2.14.1 torchvision==0.29.1" in test_cmd
    # the CPU-only wheels are offered beside the default build, as binder/ installs them
    cpu = "--index-url https://download.pytorch.org/whl/cpu"
    assert any(cpu in b for b in blocks)
    assert "download.pytorch.org/whl/cpu" in (README.parent / "binder" / "requirements.txt").read_text()
