"""The Demos tab: the lectures' initialization demo, optimizer trajectories, transfer-learning table and concept demos.

The first two are driven by the Train tab's controls: the init demo uses the chosen activation (and marks
the chosen initializer); the trajectories include the chosen optimizer, and the note says which were drawn.
The transfer table trains its runs into the lab's run store (labkit.transfer). Computation is labkit.demos
and labkit.transfer, drawing is labkit.plots; each demo runs on a thread so the page stays live.
"""
from __future__ import annotations

import contextlib
import html
import threading
from typing import Callable, Iterator

import ipywidgets as W

from ..config import Config
from ..errors import LabkitError
from ..optimizers import OPTIMIZERS
from .live import png, png_image
from .notes import error_html

INITS = ("zeros", "small", "large", "xavier", "kaiming")


@contextlib.contextmanager
def _reporting(note: W.HTML, button: W.Button | None = None) -> Iterator[None]:
    """Run a demo's work: `button` disabled meanwhile (when given), a LabkitError shown in red in `note`."""
    if button is not None:
        button.disabled = True
    try:
        yield
    except LabkitError as e:
        note.value = error_html(str(e))
    finally:
        if button is not None:
            button.disabled = False


def _progress(note: W.HTML) -> Callable[[str], None]:
    """A demo's progress callback: each message shown in `note`, in italics."""
    def say(text: str) -> None:
        note.value = f"<i>{html.escape(text)}...</i>"
    return say


def _fit() -> W.Layout:
    """A button as wide as its words (ipywidgets' default 148 px cut "Run large-batch demo" to "Run large-batch ...")."""
    return W.Layout(width="auto", min_width="148px")


def _surfaces() -> list[str]:
    from ..demos import SURFACES

    return list(SURFACES)


class DemosTab:
    """Init demo, optimizer trajectories and the transfer table; `.widget` is the tab."""

    def __init__(self, config: Callable[[], Config], out: Callable[[], str] | None = None):
        from ..transfer import DEFAULTS

        self._config = config
        self._out = out or (lambda: config().train.out)
        style = {"description_width": "80px"}
        self.depth = W.IntSlider(value=10, min=2, max=20, description="depth", style=style)
        self.width = W.IntSlider(value=500, min=50, max=1000, step=50, description="width", style=style)
        self.init_btn, self.init_note, self.init_img = self._card("Run init demo", self.run_init)
        self.surface = W.Dropdown(options=_surfaces(), description="surface", style=style)
        names = OPTIMIZERS.names()  # L-BFGS too: the demo gives it the closure its line search needs
        # every name visible at once: a selected one below the list's fold looks unselected
        self.optims = W.SelectMultiple(options=names, value=("sgd", "momentum", "adam"), rows=len(names),
                                       description="optimizers", style=style)
        self.steps = W.IntSlider(value=150, min=20, max=500, step=10, description="steps", style=style)
        self.opt_btn, self.opt_note, self.opt_img = self._card("Run trajectories", self.run_optimizers)
        self.adam_btn = W.Button(description="Adam: bias correction", icon="play", layout=_fit(),
                                 tooltip="Adam's first steps on the chosen surface with and without bias correction")
        self.adam_btn.on_click(lambda _: self._start(self.run_adam))
        self.small = W.IntText(value=DEFAULTS["small"], description="small /class", style=style,
                               layout=W.Layout(width="170px"))
        self.large = W.IntText(value=DEFAULTS["large"], description="large /class", style=style,
                               layout=W.Layout(width="170px"))
        self.transfer_btn, self.transfer_note, self.transfer_img = self._card("Run transfer demo", self.run_transfer)
        from ..demos import LARGE_BATCH

        self.lb_small = W.IntText(value=LARGE_BATCH["small"], description="small batch", style=style,
                                  layout=W.Layout(width="170px"))
        self.lb_large = W.IntText(value=LARGE_BATCH["large"], description="large batch", style=style,
                                  layout=W.Layout(width="170px"))
        self.lb_epochs = W.FloatText(value=LARGE_BATCH["epochs"], description="epochs", style=style,
                                     layout=W.Layout(width="150px"))
        self.lb_btn, self.lb_note, self.lb_img = self._card("Run large-batch demo", self.run_large_batch)
        self.mp_btn = W.Button(description="Show model parallelism", icon="sitemap", layout=_fit())
        self.mp_btn.on_click(lambda _: self._start(self.run_model_parallel))
        self.mp_img = png_image(width="100%", max_width="900px")
        from ..concepts import CONCEPTS

        self.concept = W.Dropdown(options=[(f"{e.name}: {e.help}", e.name) for e in CONCEPTS], description="demo",
                                  style=style, layout=W.Layout(width="640px"))
        self.concept_btn, self.concept_note, self.concept_img = self._card("Run concept demo", self.run_concept)
        self.widget = W.VBox([
            W.HTML("<h3 style='margin:4px 0'>Weight initialization</h3><span style='color:#555'>Activation statistics "
                   "of a deep MLP on random inputs for each initializer, using the <b>activation</b> chosen in the "
                   "Train tab (try tanh, then relu: Xavier keeps tanh's scale, a deep ReLU net collapses with it and He "
                   "fixes that; xavier_gain is Xavier times the activation's gain).</span>"),
            W.HBox([self.depth, self.width, self.init_btn]), self.init_note, self.init_img,
            W.HTML("<h3 style='margin:12px 0 4px'>Optimizers on ravines and saddles</h3><span style='color:#555'>"
                   "Select the optimizers to compare (ctrl/cmd-click for several); the note under the "
                   "button says which were drawn.</span>"),
            W.HBox([self.surface, self.optims, W.VBox([self.steps, self.opt_btn, self.adam_btn])]), self.opt_note,
            self.opt_img,
            W.HTML("<h3 style='margin:12px 0 4px'>Transfer learning: the four quadrants</h3><span style='color:#555'>"
                   "A network trained on CIFAR-10's animals learns the vehicles (similar) and generated shapes "
                   "(different) from a small and a large set, three ways each: from scratch, a linear probe, "
                   "fine-tuning. The source is trained once (minutes) and kept in the run store; then it offers "
                   "itself under Transfer &rarr; start from.</span>"),
            W.HBox([self.small, self.large, self.transfer_btn]), self.transfer_note, self.transfer_img,
            W.HTML("<h3 style='margin:12px 0 4px'>Large batches: the linear scaling rule and warmup</h3><span "
                   "style='color:#555'>Four CIFAR-10 runs at equal epochs: the small batch; the large batch at the "
                   "same learning rate (fewer steps, so it moves less); with the linear rule (peak LR x large/small); "
                   "and with the rule plus warmup. The runs go into the run store and are reused (the first time "
                   "takes minutes). A run with <b>processes</b> (Scale section) &gt; 1 trains data-parallel in worker "
                   "processes; <b>BN group</b> shows what per-replica batch norm does.</span>"),
            W.HBox([self.lb_small, self.lb_large, self.lb_epochs, self.lb_btn, self.mp_btn]), self.lb_note,
            self.lb_img, self.mp_img,
            W.HTML("<h3 style='margin:12px 0 4px'>Lecture concepts, measured</h3><span style='color:#555'>Each trains "
                   "small real models (a 2-D set; CIFAR-10 for preprocessing) in a few seconds and prints what it "
                   "measured: sigmoid's zig-zag, dead ReLUs, preprocessing, batch norm, cross-validation, early "
                   "stopping, L1 vs L2, dropout's scaling. The Train tab's seed and data directory are used.</span>"),
            W.HBox([self.concept, self.concept_btn]), self.concept_note, self.concept_img,
        ])

    def _card(self, description: str, fn: Callable[[], None]) -> tuple[W.Button, W.HTML, W.Image]:
        """A demo's Run button (running `fn` on a thread), its note line and its figure."""
        btn = W.Button(description=description, button_style="primary", icon="play", layout=_fit())
        btn.on_click(lambda _: self._start(fn))
        return btn, W.HTML(), png_image(width="100%", max_width="900px")

    def _start(self, fn: Callable[[], None]) -> threading.Thread:
        t = threading.Thread(target=fn, daemon=True, name="labkit-lab-demo")
        t.start()
        return t

    def run_init(self) -> None:
        """Compute and draw the init demo for the chosen activation."""
        from ..demos import init_demo
        from ..plots import init_demo as draw

        cfg = self._config()
        chosen = cfg.model.init
        inits = INITS if chosen in INITS else (*INITS, chosen)
        self.init_note.value = f"<i>computing {len(inits)} initializers with {html.escape(cfg.model.activation)}...</i>"
        with _reporting(self.init_note):
            result = init_demo(cfg.model.activation, inits, depth=self.depth.value, width=self.width.value)
            self.init_img.value = png(draw(result))
            self.init_note.value = (f"activation <b>{html.escape(cfg.model.activation)}</b>, your initializer: "
                                    f"<b>{html.escape(chosen)}</b>")

    def run_optimizers(self) -> None:
        """Compute and draw the trajectories of the selected optimizers plus the chosen one."""
        from ..demos import optimizer_paths
        from ..plots import optimizer_trajectories

        cfg = self._config()
        names = list(self.optims.value)
        added = cfg.optim.name not in names
        if added:
            names.append(cfg.optim.name)
        self.opt_note.value = f"<i>running {', '.join(names)} on {self.surface.value}...</i>"
        with _reporting(self.opt_note):
            result = optimizer_paths(self.surface.value, names, steps=self.steps.value)
            self.opt_img.value = png(optimizer_trajectories(result))
            self.opt_note.value = (f"drawn: <b>{html.escape(', '.join(result['paths']))}</b>"
                                   + (f" ({html.escape(cfg.optim.name)} is the Train tab's optimizer, added)"
                                      if added else ""))

    def run_adam(self) -> None:
        """Draw Adam's first steps with and without bias correction on the chosen surface."""
        from ..demos import adam_bias_correction
        from ..plots import adam_bias_correction as draw

        self.opt_note.value = f"<i>running Adam with and without bias correction on {self.surface.value}...</i>"
        with _reporting(self.opt_note):
            result = adam_bias_correction(self.surface.value)
            self.opt_img.value = png(draw(result))
            first = ", ".join(f"{v:.1f}" for v in result["step_size"]["without"][:5])
            self.opt_note.value = (f"Adam, lr {result['lr']:g}: its first steps are 1.0x lr with the bias correction "
                                   f"and {first}x lr without it")

    def run_concept(self) -> None:
        """Compute and draw the chosen concept demo (labkit.concepts), with what it measured as text."""
        import inspect

        from ..concepts import CONCEPTS
        from ..plots.concepts import concept_figure

        name, cfg = self.concept.value, self._config()
        fn = CONCEPTS.get(name)
        kwargs = {"data_root": cfg.data.root} if "data_root" in inspect.signature(fn).parameters else {}
        self.concept_note.value = f"<i>running {html.escape(name)}...</i>"
        with _reporting(self.concept_note, self.concept_btn):
            result = fn(seed=cfg.train.seed, **kwargs)
            self.concept_img.value = png(concept_figure(name, result))
            self.concept_note.value = "<br>".join(html.escape(line) for line in result["lines"])

    def run_transfer(self) -> None:
        """Measure and draw the four quadrants (the source from the run store when it is there)."""
        from ..plots import transfer_quadrants
        from ..transfer import transfer_demo

        with _reporting(self.transfer_note, self.transfer_btn):
            result = transfer_demo(self._out(), small=self.small.value, large=self.large.value,
                                   progress=_progress(self.transfer_note))
            self.transfer_img.value = png(transfer_quadrants(result))
            src = result["source"]
            self.transfer_note.value = (f"source <b>{html.escape(src['id'])}</b>"
                                        f"{' (reused)' if src['cached'] else ''}; {result['seconds']:.0f} s")

    def run_large_batch(self) -> None:
        """Measure and draw the large-batch demo into the lab's run store (runs found there are reused)."""
        from ..demos import large_batch_demo, large_batch_rows
        from ..plots import large_batch

        with _reporting(self.lb_note, self.lb_btn):
            cfg = self._config()  # its data directory and seed; the runs are the recipe's, as `labkit demo` trains
            base = Config().replace(**{"data.root": cfg.data.root})
            result = large_batch_demo(self._out(), base=base, small=self.lb_small.value, large=self.lb_large.value,
                                      epochs=float(self.lb_epochs.value), seed=cfg.train.seed,
                                      progress=_progress(self.lb_note))
            self.lb_img.value = png(large_batch(result))
            self.lb_note.value = ("<pre style='margin:0'>" + html.escape("\n".join(large_batch_rows(result)))
                                  + f"</pre>{result['seconds']:.0f} s")

    def run_model_parallel(self) -> None:
        """Draw the Train tab's convnet cut across two devices (the recipe's convnet for other models)."""
        from ..config import ModelConfig
        from ..demos import model_split
        from ..plots import model_parallel

        m = self._config().model
        with _reporting(self.lb_note):
            self.mp_img.value = png(model_parallel(model_split(m if m.kind == "convnet" else ModelConfig(), 2)))
