"""Plots: pure functions, data in, `matplotlib.figure.Figure` out (never pyplot state, never shown).

Widgets display them, the CLI saves them as PNG, notebooks show them, tests check them.
"""
from .babysit import checks_figure, lr_range_plot
from .ensemble import averaging_figure, ensemble_figure, snapshot_schedule
from .concepts import concept_figure
from .demos import adam_bias_correction, augment_preview, init_demo, optimizer_trajectories, schedule_comparison
from .scale import large_batch, model_parallel
from .transfer import transfer_quadrants
from .training import (activation_heatmap, activation_histograms, activation_stats, gradient_updates, learning_curves,
                       lr_curve, run_figure, run_figures)

__all__ = [
    "learning_curves", "lr_curve", "activation_histograms", "activation_stats", "activation_heatmap",
    "gradient_updates", "run_figure", "run_figures", "init_demo", "augment_preview", "optimizer_trajectories", "schedule_comparison", "adam_bias_correction",
    "lr_range_plot", "checks_figure", "concept_figure", "transfer_quadrants", "large_batch", "model_parallel", "ensemble_figure", "averaging_figure", "snapshot_schedule",
]
