"""Write the lesson notebooks (notebooks/lessons/NN-topic.ipynb) from the text and code below.

    .venv/bin/python notebooks/lessons/_build.py          # rewrite every lesson
    .venv/bin/python notebooks/lessons/_build.py --check  # exit 1 if a notebook differs from what this writes

Edit a lesson here, not in Jupyter: tests/test_lessons.py fails when a notebook is not what this script writes.
Every lesson has the same parts: the lecture's claim, a widget that varies the key choice and shows the figure,
what to look for, and "try this" exercises whose answers are folded away. Numbers quoted in the text were
measured with the normal sizes (labkit.lessons.SIZES) on 2 CPU cores; fast mode (LABKIT_FAST=1) runs smaller.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent


def md(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_markdown_cell(text.strip("\n"))


def code(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(text.strip("\n"))


def answer(question: str, text: str) -> str:
    """One exercise: the question, then its answer folded away."""
    return f"- {question.strip()}\n\n  <details><summary>Answer</summary>\n\n  {text.strip()}\n\n  </details>\n"


def exercises(*items: tuple[str, str]) -> nbformat.NotebookNode:
    return md("## Try this\n\n" + "\n".join(answer(q, a) for q, a in items))


def setup(lesson: str, extra: str = "") -> nbformat.NotebookNode:
    return code(f"""
import ipywidgets as W
from labkit.lessons import sizes, run_store, demo_widget, choices, show
{extra.strip()}

S = sizes("{lesson}")        # normal sizes, or the fast ones under LABKIT_FAST=1 (labkit.lessons.SIZES)
store = run_store()          # a temporary run store: nothing is written into the repository
""")


LESSONS: dict[str, list[nbformat.NotebookNode]] = {}

# -- 01 activations ------------------------------------------------------------------------------------------------
LESSONS["01-activations"] = [
    md("""
# 1. Activation functions

## The claim

Sigmoid squashes its input into (0, 1): its outputs are never negative, so every gradient on a neuron's incoming
weights has the same sign for one example, and the weights can only zig-zag towards their target. ReLU does not
saturate for positive inputs and trains fast, but a unit pushed below zero for every input gets no gradient again:
it is *dead*. Leaky ReLU, PReLU, ELU and maxout always pass some gradient.
"""),
    setup("activations", """
from labkit.demos import run_concept
from labkit.plots import concept_figure
"""),
    md("""
## Dead units: vary the activation and the learning rate

A 3-layer MLP without normalization learns the 2-D spirals with Adam at three learning rates (the highest one you
pick, a tenth and a hundredth of it). After training, a unit is counted *dead* when its gradient is exactly zero on
every training example.
"""),
    code("""
def dead_units(activations, top_lr):
    r = run_concept("dead-units", activations=choices(activations), lrs=(top_lr / 100, top_lr / 10, top_lr),
                    epochs=S["epochs"], points=S["points"])
    return concept_figure("dead-units", r), r["lines"]

demo_widget(dead_units, {
    "activations": W.SelectMultiple(options=["relu", "leaky_relu", "prelu", "elu", "maxout", "gelu", "tanh", "sigmoid"],
                                    value=("relu", "leaky_relu", "prelu", "elu", "maxout"), rows=8,
                                    description="activations"),
    "top_lr": W.FloatLogSlider(value=0.1, base=10, min=-3, max=0, step=0.5, description="highest LR"),
})
"""),
    md("""
## Sigmoid is not zero-centred: the zig-zag

One example per step (the lecture's argument is per example) on XOR: the updates of two incoming weights of one
unit of the second layer, whose inputs are sigmoid outputs (all positive) or tanh outputs (both signs).
"""),
    code("""
z = run_concept("zigzag", steps=S["zigzag_steps"])
print("\\n".join(z["lines"]))
show(concept_figure("zigzag", z))
"""),
    md("""
## What to look for

- **Dead units** (left panel): ReLU's dead fraction climbs with the learning rate (7%, 22% and 83% of its units at
  1e-3, 1e-2 and 1e-1 with the normal sizes); leaky ReLU, PReLU and maxout stay at 0%. ELU keeps a small fraction
  at the highest rate: its gradient for very negative inputs is exp(x), which rounds to exactly zero.
- **Accuracy** (right): from 1e-2 to 1e-1 ReLU falls (0.84 to 0.72) with the units it lost, while leaky ReLU and
  maxout climb to 0.95. Alive is not the same as good: PReLU (0.70) and ELU (0.50) do no better than ReLU at 1e-1,
  a rate too high for this unnormalized network whatever the activation.
- **Zig-zag**: with sigmoid inputs the gradient on a unit's incoming weights had one sign in 100% of the steps,
  so every update lies in the first or third quadrant (both weights up or both down) and the path to weights that
  must move apart is a staircase. With tanh it is 0%, the updates point every way, and the loss falls further.
"""),
    exercises(
        ("Add `tanh` and `sigmoid` to the activations. Do they have dead units? Do they learn the spirals?",
         "tanh has none. Sigmoid has none at 1e-3 and 1e-2 but 6% at 1e-1: units saturated so hard that sigmoid's "
         "slope rounds to exactly 0, the saturating cousin of a dead ReLU. Neither learns the spirals as well as "
         "ReLU at 1e-2 (0.84): tanh's best is 0.78 (at 1e-2), sigmoid's 0.66 (at 1e-3), and sigmoid sits at chance "
         "(0.50) at the two higher rates. Not dying is not the same as learning."),
        ("Set the highest LR to 0.01. Is ReLU still the worst?",
         "No. At 1e-4, 1e-3 and 1e-2 ReLU loses 5%, 7% and 22% of its units, and at 1e-2 it scores 0.84, above "
         "leaky ReLU (0.74) and PReLU (0.79), below maxout (0.90) and ELU (0.985, the best of all here). Dead ReLUs are a symptom of a rate too high for an unnormalized network, which "
         "is why the lectures pair ReLU with care about the learning rate (and batch norm)."),
        ("In the zig-zag panel, why are the sigmoid updates only in quadrants I and III?",
         "For one example the gradient on weight w_i of a unit is (dL/d out) x input_i. Sigmoid inputs are all "
         "positive, so every w_i gets the sign of dL/d out: all go up or all go down together."),
    ),
]

# -- 02 preprocessing ------------------------------------------------------------------------------------------------
LESSONS["02-preprocessing"] = [
    md("""
# 2. Data preprocessing

## The claim

Zero-centre the inputs (subtract the mean) and, for images, usually also divide by the standard deviation per
channel. Raw pixels are all positive, so the first layer sees the same problem as a layer after sigmoid: its
gradients share one sign and training is slow. The statistics come from the training set only.
"""),
    setup("preprocessing", """
from labkit.demos import run_concept
from labkit.plots import concept_figure
"""),
    md("""
## Vary the preprocessing and the learning rate

One MLP (no normalization layers, plain SGD) trained for the same number of steps on a CIFAR-10 subset with
raw pixels in [0, 1] (`none`), the per-channel mean subtracted (`mean`), or standardized (`standardize`).
"""),
    code("""
def preprocess(methods, lr):
    r = run_concept("preprocess", methods=choices(methods), lr=lr, subset=S["subset"], epochs=S["epochs"],
                     threads=S["threads"])
    return concept_figure("preprocess", r), r["lines"]

demo_widget(preprocess, {
    "methods": W.SelectMultiple(options=["none", "mean", "standardize"], value=("none", "mean", "standardize"),
                                rows=3, description="preprocess"),
    "lr": W.FloatLogSlider(value=0.05, base=10, min=-3, max=0, step=0.25, description="LR"),
})
"""),
    md("""
## What to look for

- The input histograms: raw pixels sit in [0, 1] with mean about +0.47; after mean subtraction they are centred
  at 0; after standardization they also have std 1.
- The learning curves: at the same rate and steps the raw inputs train slowest and score worst (validation accuracy
  0.17 after 5 epochs with the normal sizes). Mean subtraction alone lifts it to 0.34. Standardization, which also
  scales the inputs up fourfold, brings the training loss down fastest (1.29 vs 1.72 for mean subtraction) and peaks
  earliest; its validation accuracy ends level with mean subtraction's.
"""),
    exercises(
        ("Lower the LR to 0.01. Which method suffers most?",
         "All train slower: after 5 epochs the mean-subtracted inputs reach a training loss of 2.06 (1.72 at lr 0.05) "
         "and the standardized ones 1.62 (1.29); the raw inputs, which hardly learned at 0.05 either, 2.04. "
         "Standardized inputs stay clearly ahead (validation 0.31, against 0.26 mean-subtracted and 0.22 raw): the "
         "other two have a std of about 0.25, so the first layer's gradients are about four times smaller and at a "
         "low rate it barely moves. Standardizing is partly a learning-rate change for the first layer."),
        ("Why are the mean and std computed on the training subset only?",
         "The validation and test sets must play the role of unseen data: statistics taken from them would leak "
         "information about them into training. labkit computes them on the training subset and applies them "
         "unchanged to validation and test images."),
    ),
]

# -- 03 weight initialization ---------------------------------------------------------------------------------------
LESSONS["03-initialization"] = [
    md("""
# 3. Weight initialization

## The claim

In a deep network the scale of the weights decides what the activations do layer after layer: too small and
they shrink to zero (and so do the gradients), too large and tanh saturates or ReLU explodes. Xavier
initialization (std 1/sqrt(fan_in)) keeps the scale for tanh; a deep ReLU network, which zeroes half of each
layer's inputs, still collapses under it, and He/Kaiming (std sqrt(2/fan_in)) fixes that.
"""),
    setup("initialization", """
from labkit import Config, RunLog, train
from labkit.demos import init_demo
from labkit import plots
"""),
    md("""
## Activation statistics of a 10-layer, 500-unit network

Forward passes only (as in the lecture): Gaussian inputs through a deep MLP without biases, once per
initializer. Each panel row is one initializer; the histograms show each layer's activations.
"""),
    code("""
def activations(activation, inits):
    r = init_demo(activation, inits=choices(inits), depth=S["depth"], width=S["width"], n=S["n"])
    lines = [f"{r['inits'][i]['label']:>14}: std of layer 1 {r['inits'][i]['std'][0]:.3g}, "
             f"layer {len(r['inits'][i]['std'])} {r['inits'][i]['std'][-1]:.3g}" for i in r["inits"]]
    return plots.init_demo(r), lines

demo_widget(activations, {
    "activation": W.Dropdown(options=["tanh", "relu", "sigmoid", "leaky_relu", "gelu"], value="tanh",
                             description="activation"),
    "inits": W.SelectMultiple(options=["zeros", "small", "large", "xavier", "xavier_gain", "kaiming", "orthogonal"],
                              value=("small", "large", "xavier", "kaiming"), rows=7, description="initializers"),
})
"""),
    md("""
## Xavier collapses a deep ReLU network; He fixes it

The same 10 x 500 network with ReLU, Xavier against He. labkit's `xavier` is the lecture's, with no gain for the
activation; `xavier_gain` (in the widget above) multiplies it by the activation's gain, which for ReLU is He.
"""),
    code("""
relu = init_demo("relu", inits=("xavier", "kaiming"), depth=S["depth"], width=S["width"], n=S["n"])
for name, d in relu["inits"].items():
    print(f"{d['label']:>12}: std per layer " + " ".join(f"{s:.2g}" for s in d["std"]))
show(plots.init_demo(relu))
"""),
    md("""
## On real data: a deep tanh network on CIFAR-10

The same initializers in an 8-layer MLP trained for a few epochs on a CIFAR-10 subset.
"""),
    code("""
logs = {}
for init in ("small", "xavier", "kaiming", "large"):
    cfg = Config().replace(**{"model.kind": "mlp", "model.depth": 8, "model.width": 256, "model.activation": "tanh",
                              "model.norm": "none", "model.init": init, "optim.name": "sgd", "optim.lr": 0.01,
                              "optim.momentum": 0.0, "optim.weight_decay": 0.0, "schedule.name": "constant",
                              "data.subset": S["subset"], "data.val_size": 200, "train.epochs": S["epochs"],
                              "train.batch_size": 64, "train.test": False, "train.tta": False, "probe.every": 0,
                              "reg.label_smoothing": 0.0, "reg.flip": False, "reg.crop": 0, "train.out": str(store), "train.threads": S["threads"]})
    logs[init] = RunLog.load(train(cfg).dir)
    print(f"{init:>8}: train loss {logs[init].epoch_values('train_loss')[-1]:.3f}, "
          f"val acc {logs[init].epoch_values('val_acc')[-1]:.3f}")
show(plots.learning_curves(logs))
"""),
    md("""
## What to look for

- **tanh**: with N(0, 0.01²) the std falls by about 4.5x per layer, to 3e-7 in layer 10 (every unit outputs ~0: no
  signal, no gradient); with N(0, 1) nearly every value sits at -1 or +1 (saturated: no gradient); Xavier keeps a
  spread through all ten layers, slowly narrowing (std 0.63 in layer 1, 0.23 in layer 10); He, which labkit scales
  by the activation's gain (5/3 for tanh), holds the std at 0.65 with more values near the limits.
- **relu**: under Xavier the std shrinks at every layer, from 0.58 in layer 1 to 0.025 in layer 10, 23 times
  smaller: each ReLU zeroes half of its inputs and so halves the variance that Xavier's std 1/sqrt(fan_in) keeps,
  and the std falls by sqrt(2) per layer (sqrt(2)^9 = 23). That is the lecture's collapse; the histograms narrow to
  a spike at 0. He's sqrt(2/fan_in) puts the factor 2 back and holds the std between 0.76 and 0.85 in every layer.
- **On CIFAR-10** (normal sizes, 3 epochs): the collapsed N(0, 0.01²) network does not learn at all (train loss
  2.303 = ln 10, validation accuracy 0.100) and the saturated N(0, 1) one hardly (loss 22, accuracy 0.13); Xavier
  (0.325) and He (0.245, with the lowest training loss, 1.66) learn.
"""),
    exercises(
        ("Switch the activation to `relu` and add `xavier_gain` and `large`. What do they do?",
         "`xavier_gain` is Xavier times ReLU's gain sqrt(2): for these square layers exactly He, so its std per "
         "layer is the same as He's (the figure notes it). N(0, 1) explodes: its std is multiplied by about "
         "sqrt(500/2) = 16 per layer, from 13 in layer 1 to 8e11 in layer 10."),
        ("Add `zeros`. What do the histograms show, and why can't training fix it?",
         "Every activation is exactly 0 (tanh(0) = 0, relu(0) = 0). All units of a layer compute the same thing and "
         "get the same gradient, so they stay identical: the symmetry is never broken."),
        ("Pick `orthogonal` with tanh. How does it compare with Xavier?",
         "It keeps the scale, like He: an orthogonal matrix preserves the norm of its input, and labkit scales it by "
         "tanh's gain 5/3, so its std settles at 0.65 as He's does, while Xavier's (no gain) narrows to 0.23."),
    ),
]

# -- 04 batch normalization -----------------------------------------------------------------------------------------
LESSONS["04-batchnorm"] = [
    md("""
# 4. Batch normalization

## The claim

Batch normalization makes each layer's pre-activations zero-mean and unit-variance over the batch, then scales and
shifts them by learned gamma and beta. Training becomes robust to a bad initialization and tolerates much higher
learning rates. In training mode each batch is normalized by its own statistics; at test time the running averages
are used, so an example's output no longer depends on its batch.
"""),
    setup("batchnorm", """
from labkit.demos import run_concept
from labkit.plots import concept_figure
"""),
    md("""
## Vary the depth and the high learning rate

A deep MLP on the spirals trained with and without batch norm under He init, N(0, 0.01²) init, N(0, 1) init and He
init at a high learning rate; then the batch-norm model evaluated in eval mode and in train mode with small batches.
"""),
    code("""
def batchnorm(depth, high_lr):
    r = run_concept("batchnorm", depth=depth, high_lr=high_lr, epochs=S["epochs"])
    return concept_figure("batchnorm", r), r["lines"]

demo_widget(batchnorm, {
    "depth": W.IntSlider(value=4, min=2, max=10, description="depth"),
    "high_lr": W.FloatLogSlider(value=1.0, base=10, min=-1, max=1, step=0.25, description="high LR"),
})
"""),
    md("""
## What to look for

- Without batch norm (normal sizes, 8 epochs) even the He init at lr 0.1 reaches only 0.58 validation accuracy,
  N(0, 0.01²) stays at chance (0.50), and N(0, 1) and lr 1 diverge. With batch norm the same four reach 0.94-1.00.
- Train vs eval mode: in eval mode (running averages) the model scores its full accuracy (0.996); in train mode
  each batch is normalized by itself: 0.985 with batches of 200, 0.83 with 16, and near chance (0.57, 0.53) with 2
  or 4. This
  is why `model.eval()` matters at test time. The last panel shows why: the means of small batches scatter around the
  training set's mean, which the running mean tracks.
"""),
    exercises(
        ("Raise the high LR to 10. Does batch norm still save the run?",
         "No: at lr 10 the batch-norm network also ends at chance (0.50 validation accuracy), where at lr 1 it "
         "reached 0.99. Batch norm makes a layer's output independent of its weights' scale, so the forward pass "
         "survives large steps, but the last layer (which has no batch norm after it) and the size of the updates "
         "still limit it. There is a rate that breaks every network; batch norm moves it up."),
        ("Why does train mode with batches of 2 do so badly?",
         "With 2 examples the batch mean and variance are extremely noisy (and each normalized value is about +-1), "
         "so what a unit outputs depends mostly on which other example shares its batch. The running averages see "
         "the whole training set."),
    ),
]

# -- 05 babysitting -------------------------------------------------------------------------------------------------
LESSONS["05-babysitting"] = [
    md("""
# 5. Babysitting the learning process

## The claim

Before a long run, check the basics: the initial loss should be about ln C (ln 10 = 2.30 for CIFAR-10) with
regularization off; the network must be able to overfit a tiny sample; an LR range test over ~100 iterations finds
the learning rate's order of magnitude. While training, watch the learning curves and the ratio of each update to its
weights (about 1e-3).
"""),
    setup("babysitting", """
from labkit import Config, RunLog, train
from labkit.babysit.checks import run_checks
from labkit.babysit.lr_finder import lr_range_test
from labkit.probe_history import read_probes
from labkit import plots
"""),
    md("""
## Checks before training: vary the initializer

`run_checks` on the default convnet recipe (on a CIFAR-10 subset): the initial loss against ln C, the loss with
regularization, and overfitting 20 images. The normalization choice matters: the default convnet has batch norm.
"""),
    code("""
def checks(init, norm):
    cfg = Config().replace(**{"model.init": init, "model.norm": norm, "data.subset": S["subset"], "data.val_size": 200,
                              "train.threads": S["threads"]})
    report = run_checks(cfg, lr_test=False, overfit_steps=S["overfit_steps"])
    return plots.checks_figure(report), report.text().splitlines()

demo_widget(checks, {
    "init": W.Dropdown(options=["kaiming", "xavier", "small", "large", "zeros"], value="kaiming", description="init"),
    "norm": W.Dropdown(options=["batch", "none"], value="batch", description="norm"),
})
"""),
    md("""
## The LR range test

The learning rate grows exponentially over the steps while the loss is recorded: the curve shows where the rate
becomes too high. Which rate below that trains best, four short runs of the config decide (the README's "The LR
range test" says how).
"""),
    code("""
base = Config().replace(**{"data.subset": S["subset"], "data.val_size": 200, "train.threads": S["threads"]})
r = lr_range_test(base, start=1e-5, end=10, iters=S["lr_iters"])  # then 4 short runs pick the suggestion
print(r.text())  # the curve's floor, each short run's validation loss, the suggestion (or why there is none)
lr = r.suggestion()  # None when the curve is flat; r.why_none then says why
show(plots.lr_range_plot(r))
"""),
    md("""
## Watching a run: learning curves and update/weight ratios
"""),
    code("""
cfg = base.replace(**{"train.epochs": S["epochs"], "probe.every": 10, "train.test": False, "train.out": str(store), "train.threads": S["threads"]})
run = train(cfg)
print(run.status, "val acc", run.summary["final"]["val_acc"])
show(plots.learning_curves(RunLog.load(run.dir)))
"""),
    code("""
show(plots.gradient_updates(read_probes(run.dir)))
"""),
    md("""
## What to look for

- With `kaiming` and batch norm the initial loss is 2.32, 0.02 nats above ln 10 = 2.303 (the check passes from
  ln C - 0.2 to ln C + 0.7 nats: 2.1 to 3.0), and 20 images are overfitted (100% train accuracy) in 10 steps
  (normal sizes). `xavier` passes too (+0.03 nats, 12 steps).
- `large` with batch norm fails the initial-loss check: 3.74, 1.44 nats above ln 10 (logit std 1.7), confidently
  wrong before any training; the report names the init and suggests He. Batch norm still rescues the training
  (20 images overfitted in 17 steps): every hidden layer is renormalized, so the weights' scale hardly matters
  there. The same init with `norm=none` is the lecture's failure (exercise 1).
- The LR range test's curve is flat at tiny rates (the weights hardly move), then falls from about 1e-2; where
  it turns up for good the rate is too high. With batch norm this network tolerates very high rates: on 1,000
  images the smoothed loss is still on its floor at lr 10, the end of the range, so the test never sees the
  rate become too high (its note says so). The floor's end is the top of the usable range, not the rate to
  train at: four short runs of the config (100 steps each, its own one-cycle schedule squeezed into them) at
  10, 5, 2.5 and 1.25 end at validation losses 1.67, 1.69, 1.62 and 1.57 (normal sizes), so the suggestion is
  1.25, the lowest rate tried, and the note says a lower one may train better still (try this, 3). On 5,000
  images the same test suggests 0.47-0.82, on the plateau (0.3-0.7) where whole runs of this recipe do best
  (README, "The LR range test"). Read the curve and the runs, not only the number. When the loss never clearly
  falls (a flat curve) there is no suggestion at all: `suggestion()` is None and `r.why_none` says why.
- In the update/weight panel the ratios follow the one-cycle schedule: they rise with its warmup to 9e-3 to 4e-2
  at the peak rate (well above the 1e-3 rule of thumb; the classifier's the highest), then fall as the rate
  anneals, to 1e-7 at the last step.
"""),
    exercises(
        ("Pick `large` and `none`. What initial loss do you get, and what does the report suggest?",
         "3.5e7, 35 million nats above ln 10: N(0, 1) weights without normalization give logits with a std of "
         "2e7, a confidently wrong softmax. The report names the init scale and suggests He init; the overfit check "
         "turns NaN at its first step."),
        ("Pick `zeros`. Which checks fail and why?",
         "The initial loss passes (exactly ln 10: all-zero logits are a uniform guess), which is why it is not the "
         "only check. The regularization check fails (all-zero weights have no L2 penalty to add) and the overfit "
         "check stays at 10% after 300 steps: every unit of a layer is identical (symmetry), which the report names."),
        ("The best short run was the lowest rate tried. Run `lr_range_test(base, start=1e-5, end=10, iters=100, "
         "confirm=6)` (two more runs, at 0.625 and 0.3125): where do the runs turn? And why train short runs at all "
         "instead of reading the rate off the curve (its lowest loss, or half the floor's end)?",
         "1.25 stays the best (validation loss 1.574); 0.625 ends at 1.589 and 0.3125 at 1.670, so the runs turn "
         "at 1.25: a lower rate does not train better here (the note is there because a best run at the border of "
         "the rates tried says nothing about the rates beyond it, as `labkit search` warns of a best trial at the "
         "edge of its range). As for the curve: the rate keeps growing during the test, so it shows the rates at "
         "which ~100 steps of a growing rate still make progress, not which rate trains best over a whole run "
         "with its schedule. How far below the floor's end that rate lies differs by network: about 1/6 of it on "
         "the default recipe (batch norm keeps the test's loss falling to lr ~3), about the floor's end itself on "
         "a 2-D MLP or an Adam MLP, and no reading of the curve alone fits both (benchmarks/RESULTS.md). A few "
         "short runs of the real schedule tell them apart: the lectures' advice (find the order of magnitude, "
         "then search around it, lesson 6) in miniature."),
    ),
]

# -- 06 hyperparameter search ---------------------------------------------------------------------------------------
LESSONS["06-search"] = [
    md("""
# 6. Hyperparameter search

## The claim

Search on a log scale for rates and decays, coarse (few epochs) then fine. Prefer random search to a grid
(Bergstra & Bengio 2012): when only a few hyperparameters matter, a k x k grid tries only k values of the important
one, while k² random points try k² of them. Evaluate on a validation split, or by k-fold cross-validation when the
data is small.
"""),
    setup("search", """
from labkit import Config
from labkit.search import Param, Space, bergstra_demo, compare_samplers, trial_rows
from labkit.demos import run_concept
from labkit.plots import concept_figure
from labkit.plots.search import bergstra_summary, sampler_planes
"""),
    md("""
## Random vs grid on real training runs: vary the budget

The learning rate (important) and the weight decay (barely matters here) of an MLP on the spirals, searched by
a grid and by random search with the same number of trials. Each point is a training run.
"""),
    code("""
def random_vs_grid(trials, seed):
    base = Config().replace(**{"data.dataset": "spirals", "data.points": S["points"], "model.kind": "mlp",
                               "model.width": 32, "train.epochs": S["epochs"], "optim.name": "adam",
                               "schedule.name": "constant", "probe.every": 0, "train.test": False,
                               "reg.label_smoothing": 0.0, "train.threads": S["threads"]})
    space = Space.parse(["optim.lr=log:1e-4:1", "optim.weight_decay=log:1e-6:1e-3"])
    studies = compare_samplers(base, space, trials=trials, samplers=("grid", "random"),
                               study=f"cmp-{trials}-{seed}", out=str(store), seed=seed)
    rows = {name: trial_rows(s) for name, s in studies.items()}
    lr_values = {name: sorted({round(r["params"]["optim.lr"], 6) for r in rs}) for name, rs in rows.items()}
    best = {name: max(r["value"] or 0 for r in rs) for name, rs in rows.items()}
    lines = [f"{n}: {len(lr_values[n])} distinct learning rates, best val acc {best[n]:.3f}" for n in rows]
    return sampler_planes(rows, space.params[0], space.params[1]), lines

demo_widget(random_vs_grid, {
    "trials": W.Dropdown(options=[4, 9, 16], value=S["trials"], description="trials"),
    "seed": W.IntText(value=0, description="seed", layout=W.Layout(width="160px")),
})
"""),
    md("""
## Many repeats on a synthetic objective

The same question asked 100s of times on a function with one important and one unimportant parameter, where
every search costs nothing: how often does random search find a better point than a grid of the same size? First
one draw at 9 trials, as in the paper's figure 1 (grey: the true score along each parameter; shaded in the grid's
top panel: where the peak would have had to be for the grid to win against these random points), then the wins
over all repeats and budgets.
"""),
    code("""
b = bergstra_demo(repeats=S["repeats"])
ex = b.example
x, y = Param("x", "float", 0.0, 1.0), Param("y", "float", 0.0, 1.0)  # the objective's two parameters
show(sampler_planes({"grid": ex["grid"], "random": ex["random"]}, x, y, curves={"x": ex["x_curve"], "y": ex["y_curve"]},
                    score="score", bands={"grid": ("a peak here: grid wins", ex["luck"])}, note=ex["note"]))
show(bergstra_summary(b.budgets, b.random_wins, b.ties, b.grid_best, b.random_best, b.repeats, b.weight))
"""),
    md("""
## Cross-validation: how much does one validation split tell you?

On a small set (200 points) the accuracy is estimated several times by one held-out split and by 5-fold
cross-validation, each time on a different shuffle.
"""),
    code("""
cv = run_concept("crossval", repeats=S["cv_repeats"], epochs=S["cv_epochs"])
print("\\n".join(cv["lines"]))
show(concept_figure("crossval", cv))
"""),
    md("""
## What to look for

- In the planes, the grid's points line up in k columns: k learning rates tried, each k times with a weight decay
  that hardly changes the score (the marginal on the right is flat). Random search spreads its points over k²
  learning rates, and its marginal along the top maps the whole rise and fall of the score with the rate.
- One search is one draw. With 9 trials and seed 0 the grid's middle column lands at lr 0.01, next to the peak, and
  its best (0.950) edges random's (0.940): a grid wins when one of its few values happens to fall near the peak.
- The single draw shows why: random search's 9 points try 9 values of x, and one lands near the peak of the
  important curve; the grid's 3 columns would have beaten them only if the peak had fallen in the shaded bands
  (32% of the axis for this draw; the grid won 36% of 500 such draws).
- The repeats show what to expect: random search finds the better point in 57% of 500 repeats at 4 trials, 66% at
  9 and 72-77% from 16 trials on (never a tie), and its mean best is higher at every budget.
- Cross-validation: the held-out estimate swings from shuffle to shuffle (0.70 to 0.825, std 0.062 over 4 shuffles
  with the normal sizes); the 5-fold mean is five times steadier (std 0.012) and nearer the accuracy on 2,000 fresh
  points (0.828 against 0.846), for 5x the training.
"""),
    exercises(
        ("Run the planes with 4 trials and a few seeds. Does random always win?",
         "No: with 2 x 2 grid points and 4 random ones both see few rates, and which one lands nearer the good "
         "learning rates is luck. The advantage of random search is in expectation, and grows with the budget."),
        ("Why is the weight decay the unimportant axis here?",
         "On 2-D spirals with a few epochs the network does not overfit much, so a penalty of 1e-6 to 1e-3 changes "
         "the score by little; the learning rate, over four decades, decides between not learning and diverging."),
        ("When is one held-out split enough?",
         "When the validation set is large: its estimate's standard error shrinks like 1/sqrt(n). The lectures "
         "note that deep learning usually has enough data for one split; cross-validation is for small sets, where "
         "the spread of a single split is as large as the differences you want to see."),
    ),
]

# -- 07 optimizers ----------------------------------------------------------------------------------------------------
LESSONS["07-optimizers"] = [
    md("""
# 7. Optimizers

## The claim

Plain SGD zig-zags across a ravine (a loss surface much steeper in one direction than another) and creeps along
its floor; momentum builds up speed along the floor and damps the zig-zag, Nesterov looks ahead before stepping.
AdaGrad and RMSProp divide each step by a running scale of the gradient, so steep and flat directions move
alike; Adam combines momentum with that scaling (and corrects the bias of its first, zero-initialized averages).
"""),
    setup("optimizers", """
from labkit import Config, RunLog, train
from labkit.demos import optimizer_paths, adam_bias_correction
from labkit import plots
"""),
    md("""
## Paths on 2-D surfaces: vary the surface and the optimizers

torch.optim's own optimizers from one start point, each at a learning rate that shows its typical behaviour.
"""),
    code("""
def paths(surface, optimizers):
    r = optimizer_paths(surface, optimizers=choices(optimizers))
    lines = [f"{o:>9} (lr {r['lrs'][o]:g}): final loss {r['losses'][o][-1]:.3g} after {len(r['losses'][o]) - 1} steps"
             + (f" ({r['evals'][o]} gradient evaluations: its line search)" if o == "lbfgs" else "")
             for o in r["paths"]]
    return plots.optimizer_trajectories(r), lines

demo_widget(paths, {
    "surface": W.Dropdown(options=["ravine", "rosenbrock", "saddle"], value="ravine", description="surface"),
    "optimizers": W.SelectMultiple(options=["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "lbfgs"],
                                   value=("sgd", "momentum", "nesterov", "adam"), rows=7, description="optimizers"),
})
"""),
    md("""
## Adam's bias correction

Adam's running averages of the gradient (m) and of its square (v) start at 0, so in the first steps they are too
small: m by a factor 1 - 0.9^t, v by 1 - 0.999^t. `torch.optim.Adam` divides them by those factors, the bias
correction; here it runs on the ravine beside the same update without the correction (lr 0.3).
"""),
    code("""
a = adam_bias_correction("ravine", steps=60, lr=0.3)
for mode in ("with", "without"):
    size = a["step_size"][mode]
    print(f"{mode:>7} bias correction: step 1 is {size[0]:.2f} x lr, the largest {size.max():.2f} x lr "
          f"(step {size.argmax() + 1}); loss after 10 steps {a['losses'][mode][10]:.2g}")
show(plots.adam_bias_correction(a))
"""),
    md("""
## On real data: the same optimizers training a network

An MLP on the spirals, each optimizer at a learning rate typical for it (0.1 for SGD and momentum, 1e-2 for the
adaptive ones), same steps and seed.
"""),
    code("""
logs = {}
for name, lr in (("sgd", 0.1), ("momentum", 0.1), ("rmsprop", 0.01), ("adam", 0.01)):
    cfg = Config().replace(**{"data.dataset": "spirals", "data.points": S["points"], "model.kind": "mlp",
                              "model.width": 64, "train.epochs": S["epochs"], "optim.name": name, "optim.lr": lr,
                              "optim.weight_decay": 0.0, "schedule.name": "constant", "probe.every": 0,
                              "reg.label_smoothing": 0.0, "train.batch_size": 32, "train.out": str(store), "train.threads": S["threads"]})
    logs[name] = RunLog.load(train(cfg).dir)
    print(f"{name:>9}: val acc {logs[name].epoch_values('val_acc')[-1]:.3f}")
show(plots.learning_curves(logs))
"""),
    md("""
## What to look for

- **Ravine**: SGD bounces between the walls (its rate is limited by the steep direction) and moves slowly along the
  floor; momentum overshoots and swings from wall to wall, Nesterov, looking ahead, damps the swing within a few
  steps and ends lowest (loss 6e-4 after 60 steps, against 4e-3 for SGD). Adam's first steps have the same size in
  x and y (each coordinate is divided by its own gradient scale), so it moves diagonally, overshoots the minimum and
  circles back.
- **Saddle**: starting almost exactly on the ridge (y = 0.001), SGD and momentum slide to the saddle point, where
  the gradient is tiny, and need about 60 steps to leave it (y = 0.29 and 0.31 at step 60). AdaGrad, RMSProp and
  Adam divide by the gradient's own small scale and are at the minimum (y = 1) within about 10 steps.
- **Bias correction**: with it Adam's first step is exactly lr in size (1.00 x lr) and the next ones no larger.
  Without it the raw m / sqrt(v) is too large: the first step is (1 - 0.9) / sqrt(1 - 0.999) = 3.2 x lr, the third
  4.7 x lr (for a gradient that stayed constant the factor would climb to 6.6, the dashed curve), and the path swings
  far up the ravine's walls before the averages have warmed up. On this smooth 2-D bowl the larger steps even help
  (loss 0.22 after 10 steps, against 0.65 with the correction), but in a network a rate chosen for Adam would act
  several times larger in the first steps, exactly when the weights are random and the gradients least reliable.
- **On the spirals**: with a rate suited to each, the differences shrink on an easy problem: all four end between
  0.905 (SGD) and 0.975 (momentum) validation accuracy after 6 epochs. The surfaces show why the choice still
  matters: how far each gets in few steps, and how it behaves in a ravine or near a saddle.
"""),
    exercises(
        ("Add `lbfgs` on the Rosenbrock surface. How many steps does it need?",
         "L-BFGS uses curvature from its history and a line search: on this smooth 2-D function its loss is 0.07 "
         "after 10 steps and 2e-10 by step 50, while after all 400 steps Adam is at 0.045 and SGD at 4.8. Its line "
         "search costs extra gradient evaluations (461 for its 400 steps, printed under the figure), far fewer than "
         "the others need for the same loss. It needs "
         "full-batch, noise-free gradients, which is why it is rarely used to train networks on mini-batches."),
        ("On the ravine, why can't SGD just use a larger learning rate?",
         "Its rate is capped by the steep direction (curvature 4 here: at lr 0.5 it bounces between the walls "
         "forever, at 0.55 it diverges), "
         "and at that rate the flat direction (curvature 0.1) moves 40 times slower. Momentum and per-parameter "
         "scaling remove that trade-off."),
    ),
]

# -- 08 schedules and early stopping --------------------------------------------------------------------------------
LESSONS["08-schedules"] = [
    md("""
# 8. Learning-rate schedules and early stopping

## The claim

A high learning rate makes fast progress but cannot settle into a minimum; decaying it over training (step,
cosine, linear, inverse square root) lets the loss drop further at the end. Warmup starts low to avoid early
blow-ups. Early stopping keeps the weights of the epoch with the best validation score, and stops when the
score has not improved for `patience` epochs.
"""),
    setup("schedules", """
from labkit.demos import schedule_curves, run_concept
from labkit import plots
from labkit.plots import concept_figure
"""),
    md("""
## The schedules: vary which ones and the warmup

Every schedule is the same code the training loop uses (`labkit.schedule_curve` gives it for any config).
"""),
    code("""
def schedules(names, warmup):
    curves = schedule_curves(choices(names), epochs=S["epochs"], steps_per_epoch=50, lr=0.1, warmup_epochs=warmup)
    return plots.schedule_comparison(curves, steps_per_epoch=50), [f"{n:>10}: LR at the end {c[-1]:.2g}" for n, c in curves.items()]

demo_widget(schedules, {
    "names": W.SelectMultiple(options=["constant", "step", "multistep", "exponential", "cosine", "linear",
                                       "invsqrt", "onecycle", "restarts"],
                              value=("constant", "step", "cosine", "linear", "onecycle"), rows=9,
                              description="schedules"),
    "warmup": W.FloatSlider(value=0.0, min=0, max=5, step=0.5, description="warmup (ep.)"),
})
"""),
    md("""
## Early stopping on a small noisy set

A wide MLP overfits 100 noisy points: run to the end, and again with early stopping (patience 10).
"""),
    code("""
es = run_concept("early-stopping", epochs=S["es_epochs"])
print("\\n".join(es["lines"]))
show(concept_figure("early-stopping", es))
"""),
    md("""
## What to look for

- **Schedules**: step drops by 10x at its milestones; cosine and linear decay smoothly to 0; one-cycle rises over
  its first quarter (from lr/25 = 0.004 to the peak 0.1 at epoch 5), then anneals to almost 0. With warmup every
  other schedule starts with a linear ramp from almost 0 up to its own curve; for one-cycle the warmup is its own
  rise, from 0.004 to the peak at the end of the warmup, once (not a ramp in front of its rise: exercise 2).
- A schedule whose curve is identical to one drawn before it is drawn dashed on top and labelled so: add
  `multistep`, and it reads `multistep (same curve as step)` (step without `step_every` uses multistep's
  milestones).
- **Early stopping**: the validation accuracy peaks (0.840 at epoch 31, the star) and then drifts down (0.815 at
  epoch 60) while the training loss keeps falling: overfitting. The best checkpoint keeps the peak's weights whatever comes after, and with patience the
  run ends `patience` epochs after the peak, saving the rest of the training.
"""),
    exercises(
        ("With warmup 2, what is the learning rate at the first step of `cosine`?",
         "0.001, a hundredth of the peak: warmup ramps the rate linearly over 2 epochs (100 steps here) up to the "
         "schedule's value, then the cosine decay follows."),
        ("Pick `onecycle` alone and set warmup 2. Where is the peak now, and how does the rate get there?",
         "At the end of epoch 2 instead of epoch 5. One-cycle already has a rise, so a warmup does not add a ramp in "
         "front of it (that would climb from 0 to the peak, drop to lr/25 and climb again); it sets how long "
         "one-cycle's own rise lasts, in place of its `pct_start`: the rate starts at 0.004 (lr/25), climbs once to "
         "0.1 at step 100, and anneals over the remaining 18 epochs."),
        ("Does early stopping change the best checkpoint's test accuracy here?",
         "No: both runs are the same seeded run until the stop, so both keep the weights of the same best epoch "
         "and score the same on the test set. Early stopping saves time; the best checkpoint is what protects the "
         "score."),
    ),
]

# -- 09 regularization ----------------------------------------------------------------------------------------------
LESSONS["09-regularization"] = [
    md("""
# 9. Regularization

## The claim

A network that fits its training set much better than its validation set is overfitting. Regularization trades a
little training fit for a smaller gap: weight decay (L2) shrinks all weights, L1 drives many to zero, dropout
(and DropConnect) train with random parts of the network switched off, and data augmentation (flips, crops,
cutout, mixup, cutmix) shows the network a new variant of each image every time.
"""),
    setup("regularization", """
from labkit import Config, RunLog, train
from labkit.demos import run_concept, augment_preview
from labkit import plots
from labkit.plots import concept_figure
"""),
    md("""
## Vary the regularizer on a small CIFAR-10 subset

The default convnet trained on 1,000 images for 20 epochs (the normal sizes) fits them perfectly. Compare it without regularization
and with the ones you pick: the train/validation gap is the thing to watch.
"""),
    code("""
def regularize(weight_decay, dropout, augment, mixup):
    base = Config().replace(**{"data.subset": S["subset"], "data.val_size": S["val_size"], "train.epochs": S["epochs"],
                               "schedule.name": "cosine", "optim.weight_decay": 0.0, "reg.label_smoothing": 0.0,
                               "reg.flip": False, "reg.crop": 0, "train.test": False, "train.tta": False,
                               "probe.every": 0, "train.out": str(store), "train.threads": S["threads"]})
    reg = base.replace(**{"optim.weight_decay": weight_decay, "model.dropout": dropout, "reg.flip": augment,
                          "reg.crop": 4 if augment else 0, "reg.mixup": mixup})
    logs = {"none": RunLog.load(train(base).dir), "regularized": RunLog.load(train(reg).dir)}
    lines = [f"{k:>12}: train acc {l.epoch_values('train_acc')[-1]:.3f}, val acc {l.epoch_values('val_acc')[-1]:.3f}"
             for k, l in logs.items()]
    return plots.learning_curves(logs), lines

demo_widget(regularize, {
    "weight_decay": W.Dropdown(options=[0.0, 1e-5, 1e-4, 5e-4, 5e-3], value=0.0, description="weight decay"),
    "dropout": W.FloatSlider(value=0.0, min=0, max=0.8, step=0.1, description="dropout"),
    "augment": W.Checkbox(value=True, description="flip + crop"),
    "mixup": W.FloatSlider(value=0.0, min=0, max=1, step=0.1, description="mixup alpha"),
})
"""),
    md("""
## What augmentation shows the network
"""),
    code("""
show(plots.augment_preview(augment_preview(n=S["preview"])))
"""),
    md("""
## L1 vs L2: the weights afterwards
"""),
    code("""
l = run_concept("l1-l2", epochs=S["l1_epochs"])
print("\\n".join(l["lines"]))
show(concept_figure("l1-l2", l))
"""),
    md("""
## Dropout: why the surviving units are scaled by 1/(1-p)
"""),
    code("""
d = run_concept("dropout", epochs=S["dropout_epochs"])
print("\\n".join(d["lines"]))
show(concept_figure("dropout", d))
"""),
    md("""
## What to look for

- Without regularization the network memorizes its 1,000 images (train accuracy 1.00) and validates at 0.54: a
  gap of 46 points. With flip + crop (the default choice here) it trains to 0.85 and validates at 0.58: the gap
  shrinks to 28 points and the validation accuracy gains 3.4 (normal sizes).
- L1 leaves 90% of the weights below 1e-3 in size, a sparse network; L2 shrinks them all (the largest 1.52 against
  2.69 without a penalty) and leaves 26% that small; without a penalty 1% are.
- Inverted dropout divides the kept units by 1 - p in training, so a unit's mean output is the same in train and
  eval mode (the ratio is 1.00); without the scaling it would be 1 - p in training, and the next layer would see
  inputs twice as large at test time (p = 0.5).
"""),
    exercises(
        ("Add dropout 0.3 to flip + crop. Does it add anything?",
         "Not here: validation 0.558 against 0.576 for flip + crop alone, within the noise, while the training "
         "accuracy falls further (0.82 against 0.85). Regularizers overlap; on small images augmentation does most "
         "of the work."),
        ("Set dropout to 0.8. What happens to the training accuracy?",
         "With flip + crop it falls to 0.46 (0.85 without dropout) and the validation accuracy to 0.43 (0.58): with "
         "80% of the classifier's inputs dropped at each step the network underfits. Regularization is a dial; too "
         "much of it costs accuracy on both sets."),
        ("Why does the mixup run's training loss stay high?",
         "Its targets are soft (two labels mixed by lambda), so even a perfect prediction of the mixed target has "
         "a cross-entropy well above 0: with flip + crop and mixup 0.4 it ends at 1.27, against 0.49 without mixup. "
         "The training loss is not comparable with the unmixed run's; compare validation accuracy instead."),
    ),
]

# -- 10 ensembles -----------------------------------------------------------------------------------------------------
LESSONS["10-ensembles"] = [
    md("""
# 10. Ensembles and weight averaging

## The claim

Independently trained models make different mistakes: averaging their predictions is reliably better than the
typical single model (a few points in the lectures). It costs one training per member; snapshot ensembles take
several models from one run with a cyclic learning rate, and Polyak averaging (an exponential moving average of
the weights) gets part of the gain for free at test time.
"""),
    setup("ensembles", """
from labkit import Config, load_run, train
from labkit.ensemble import ensemble
from labkit import plots
"""),
    md("""
## Vary the number of members

Each member is the same recipe with a different seed, trained on the same CIFAR-10 subset; the ensemble averages
their softmax on the test set.
"""),
    code("""
def members_of(n, ema):
    dirs = []
    for seed in range(n):
        cfg = Config().replace(**{"data.subset": S["subset"], "data.val_size": 200, "model.width": 16,
                                  "train.epochs": S["epochs"], "train.seed": seed, "train.tta": False,
                                  "train.test": bool(ema),  # the ensemble scores the members on the test set itself
                                  "train.ema": ema, "probe.every": 0, "train.out": str(store), "train.threads": S["threads"]})
        dirs.append(train(cfg).dir)
    return dirs

def ensemble_of(n, ema):
    dirs = members_of(n, 0.99 if ema else 0.0)
    result = ensemble(dirs)
    lines = result.table().splitlines()
    if ema:
        finals = [load_run(d).summary["final"] for d in dirs]
        lines += [f"member {i + 1}: raw weights {f['test_acc']:.2%}, their EMA {f['ema_test_acc']:.2%}"
                  for i, f in enumerate(finals)]
    return plots.ensemble_figure(result), lines

demo_widget(ensemble_of, {
    "n": W.IntSlider(value=S["members"], min=2, max=5, description="members"),
    "ema": W.Checkbox(value=False, description="EMA of weights too"),
})
"""),
    md("""
## What to look for

- The ensemble's test accuracy is above the members' mean and usually above the best member too (picking the best
  member on the test set is itself optimistic). With the normal sizes: members 48.6%, 41.1% and 44.0% (mean 44.5%),
  the ensemble 51.1%: +6.5 points over the mean, +2.5 over the best.
- These members are short runs on 1,000 images, so they differ a lot and the gain is large; labkit's benchmark on
  the full recipe (README, Ensembles) measures +2.5 points for 3 models, at 3x the compute.
"""),
    exercises(
        ("Why must the members differ (different seeds) for an ensemble to help?",
         "Identical models make identical mistakes: their average is the same model. Different initializations and "
         "data orders land in different minima whose errors are partly independent, and averaging cancels part of "
         "them."),
        ("Tick EMA. Does the moving average of the weights beat the raw weights here?",
         "Barely: with the normal sizes the members go from 48.6% to 48.4%, 41.1% to 41.5% and 44.0% to 44.1% "
         "(EMA 0.99), +0.1 points on average, within the noise, while the ensemble of the same members gains 6.5. "
         "The one-cycle schedule anneals the rate almost to 0 at the end, so the last weights already average the "
         "end of training (labkit's benchmark on the full recipe: +0.09 +- 0.23 points for its EMA)."),
    ),
]

# -- 11 transfer learning -------------------------------------------------------------------------------------------
LESSONS["11-transfer"] = [
    md("""
# 11. Transfer learning

## The claim

With little data, start from a network trained on a bigger, related set: with very little, similar data train only
a new classifier on its features (a linear probe); with more data, or data less similar, fine-tune the whole
network at a lower learning rate. With a lot of data training from scratch catches up.
"""),
    setup("transfer", """
from labkit.transfer import transfer_demo
from labkit import plots
"""),
    md("""
## The four quadrants: vary how much target data there is

A source network is trained on CIFAR-10's six animals (once: it is kept in the run store and reused), then three ways
are compared at equal steps on a similar target (CIFAR-10's four vehicles) and a different one (generated shapes):
from scratch, a linear probe on the frozen network, and fine-tuning everything at a tenth of the rate.
"""),
    code("""
def quadrants(small, large):
    r = transfer_demo(str(store), small=small, large=large, small_steps=S["small_steps"], large_steps=S["large_steps"],
                      source_images=S["source_images"], source_epochs=S["source_epochs"], width=16, threads=S["threads"],
                      sizes=S["rows"], targets=S["columns"])
    lines = [f"{size} {target}: " + ", ".join(f"{m} {a:.3f}" for m, a in cell["accuracy"].items())
             for (size, target), cell in r["cells"].items()]
    return plots.transfer_quadrants(r), lines

demo_widget(quadrants, {
    "small": W.IntSlider(value=S["small"], min=5, max=100, step=5, description="small /class"),
    "large": W.IntSlider(value=S["large"], min=20, max=500, step=20, description="large /class"),
})
"""),
    md("""
## What to look for

- Each cell holds the three accuracies and the lecture's advice for that quadrant. With the normal sizes (a source
  trained on 6,000 animal images for 6 epochs, 20 and 100 target images per class, 60 and 120 steps):
- **Little, similar data** is where transfer helps here: fine-tuning (0.524) and the linear probe (0.516) edge out
  training from scratch (0.513), by less than the noise of one seed.
- **Little, different data** is the lecture's hard quadrant: the animal features do not fit drawn shapes; the
  linear probe is worst (0.312), fine-tuning, which can change the features, is best (0.354 against 0.339 from
  scratch).
- **More data**: from scratch passes both (0.666 vs 0.612 fine-tuned on the vehicles, 0.582 vs 0.509 on the
  shapes).
- The source matters: one trained in seconds has weak features. labkit's benchmark with a stronger source and
  longer runs (README, Transfer learning) measures fine-tuning +7.9 points over scratch on the similar and +21.8 on
  the different small target.
"""),
    exercises(
        ("Why is the linear probe worst on the different target (shapes)?",
         "Its features were learned on photos of animals; a linear classifier on the last layer's features of that "
         "network can only combine what those features already encode, and drawn shapes on gradients need other "
         "features (probe 0.312 and 0.360 in the two shape cells, the lowest of each). Fine-tuning can change them."),
        ("Compare the small and the large row. Where does training from scratch win, and why?",
         "In the large row, on both targets: with 100 images per class (and twice the steps) the network learns "
         "the target itself, and the source's prior, fitted to other images, is worth less than fitting the target. "
         "With 20 images per class the source's features are worth about as much as what 60 steps can learn, or "
         "more (fine-tuning is best in both small cells here)."),
    ),
]

# -- 12 training at scale -----------------------------------------------------------------------------------------
LESSONS["12-scale"] = [
    md("""
# 12. Training at scale: large batches

## The claim

Data-parallel training on many devices means large batches: k times the batch is k times fewer steps per epoch.
At the same learning rate the large batch moves less per epoch and falls behind; the linear scaling rule (Goyal et
al. 2017) multiplies the rate by k, and a warmup over the first epochs keeps those large early steps from
blowing up.
"""),
    setup("scale", """
from labkit import Config
from labkit.demos import large_batch_demo
from labkit import plots
"""),
    md("""
## Small vs large batch at equal epochs: vary the large batch and the warmup
"""),
    code("""
def large_batch(large, warmup):
    base = Config().replace(**{"model.width": 16, "train.test": S["test"]})
    r = large_batch_demo(str(store), base=base, subset=S["subset"], val_size=500, epochs=S["epochs"],
                         small=S["small"], large=large, warmup=warmup, lr=0.05,
                         threads=S["threads"])
    lines = [f"{a['label']:>34}: peak LR {a['peak']:.3g}, {a['steps']} steps, val acc {a['val_acc']:.3f}"
             for a in r["arms"]]
    return plots.large_batch(r), lines

demo_widget(large_batch, {
    "large": W.Dropdown(options=[64, 128, 256], value=S["large"], description="large batch"),
    "warmup": W.FloatSlider(value=1.0, min=0, max=3, step=0.5, description="warmup (ep.)"),
})
"""),
    md("""
## What to look for

- With the normal sizes (2,048 images, 4 epochs, batch 32 vs 256): at the same rate the large batch takes 8 times
  fewer steps (32 instead of 256) and hardly leaves the start: validation accuracy 14.6% against 32.8%.
- The linear rule gives it 8 times the rate and recovers much of the gap (25.0%); with a 1-epoch warmup it also
  scores 25.0% (test 27.5% vs 26.5%: no difference at this size). The rule does not close the whole gap: 32 steps
  are too few, however large each one.
"""),
    exercises(
        ("Why not always use the largest batch that fits?",
         "Per epoch it makes fewer, larger steps; past some size (about 8,000 images on ImageNet in Goyal et al.) "
         "even the scaled rate cannot make up for the lost steps and the final accuracy drops. Here, with 2,048 "
         "images, batch 256 is already past that point: its 32 steps are too few."),
        ("What does warmup do to the first epoch's learning rate?",
         "In the left panel the warmup run's rate climbs linearly through the first epoch, from the unscaled 0.05 up "
         "to the scaled 0.4, so the first updates, taken when the weights are random and the gradients large, are "
         "the small batch's size."),
    ),
]


# the lessons that read CIFAR-10 (the others use the generated 2-D sets and need no files)
CIFAR = {"02-preprocessing", "03-initialization", "05-babysitting", "09-regularization", "10-ensembles", "11-transfer",
         "12-scale"}


def build(name: str, cells: list[nbformat.NotebookNode]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"},
                   "labkit": {"data": "cifar10" if name in CIFAR else "points"}}
    for i, c in enumerate(nb.cells):
        c["id"] = f"{name[:2]}-{i:02d}"  # stable ids: rebuilding writes the same bytes
    return nb


def text(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name, cells in LESSONS.items():
        path = HERE / f"{name}.ipynb"
        new = text(build(name, cells))
        if check:
            if not path.is_file() or path.read_text() != new:
                stale.append(path.name)
        else:
            path.write_text(new)
    if stale:
        print("not up to date with _build.py: " + ", ".join(stale) + "; run: python notebooks/lessons/_build.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
