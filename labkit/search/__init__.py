"""Hyperparameter search on Optuna: spaces (space.py), studies and their storage (storage.py), running trials
in worker processes (run.py), and reading results (analysis.py).

    from labkit.search import Space, run_search
    study = run_search(config, Space.parse(["optim.lr=log:1e-4:1"]), trials=20, sampler="random")

Names load their module on first use: the plots read search results without importing the trial runner.
"""
from ..lazy import lazy_exports

_EXPORTS = {
    **{n: ".space" for n in ("Space", "Param", "SYNTAX", "parse_param", "SAMPLERS", "PRUNERS")},
    **{n: ".storage" for n in ("load_study", "study_setup", "open_storage", "default_journal", "describe",
                               "SearchSetup", "storage_url", "trial_is_counted", "fail_stale_trials")},
    **{n: ".analysis" for n in ("refine", "refine_with_notes", "border_warnings", "bergstra_demo", "BergstraResult", "trial_rows",
                                "trials_table", "trial_curves", "importances", "plane_axes")},
    **{n: ".run" for n in ("run_search", "compare_samplers", "sample_points", "core_shares", "create_or_resume",
                           "make_sampler", "make_pruner", "TrialFailed", "TrialInterrupted", "worker_main")},
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
