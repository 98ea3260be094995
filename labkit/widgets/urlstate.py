"""Settings in the dashboard's URL query, as TensorFlow Playground's links: `?optim.lr=0.01&model.init=large`.

Keys are config paths; values are parsed by the config field's type
(`Config.set`), never evaluated. A stale link still opens, and nothing in it
is changed silently: every key the lab cannot use is reported with why and
what the setting is instead. A value the controls can hold but the field does
not allow (a batch size of -5) is put into its control as it came, so the
lab shows it beside the control and Train is disabled with the reason.
"""
from __future__ import annotations

import os
from urllib.parse import parse_qsl, quote, urlencode

from ..config import Config, config_paths
from ..errors import LabkitError
from ..fields import FIELDS, differing, value_text

# where the run store is comes from the lab, never from a link (nor a run of this machine to start from)
NOT_FROM_LINKS = ("data.root", "data.folder", "train.out", "train.name", "model.init_from")


def read_query_string() -> str:
    """The page's query string as Voila passes it to the kernel (empty in JupyterLab or a plain kernel)."""
    return os.environ.get("QUERY_STRING", "") or ""


def _label(path: str) -> str:
    f = FIELDS.get(path)
    return f.widget_label() if f is not None and f.section else path


def config_from_query(query: str, base: Config | None = None) -> tuple[Config, list[str]]:
    """Apply `query` (with or without a leading '?') to a copy of `base`; returns the config and every problem.

    Unknown keys, unreadable values and names the lab does not offer are ignored and reported with the value
    kept instead; numbers out of range are applied and reported (the lab refuses to train them, and says why).
    """
    cfg = (base or Config()).copy()
    problems: list[str] = []
    paths = config_paths()
    for key, value in parse_qsl(query.lstrip("?"), keep_blank_values=True):
        if key in NOT_FROM_LINKS:
            problems.append(f"{key}: a link cannot set this (where runs and data are stored is the lab's); ignored")
            continue
        if key not in paths:
            problems.append(f"{key}: not a setting of the lab; ignored")
            continue
        kept = f"ignored, {_label(key)} stays {value_text(cfg.get(key))}"
        try:
            parsed = Config().set(key, value).get(key)
        except LabkitError as e:
            why = str(e).split(": ", 1)[-1].split("; fix:")[0]  # the lab has no flags: drop the CLI fix
            problems.append(f"{key}={value!r}: {why}; {kept}")
            continue
        f = FIELDS.get(key)
        if f is not None and f.choices is not None and parsed not in (f.offered() if f.section else f.choice_names()):
            names = f.offered() if f.section else f.choice_names()
            problems.append(f"{key}={value!r}: not one of the lab's choices ({', '.join(names)}); {kept}")
            continue
        if f is not None and f.is_range:
            try:
                f.check(parsed)
            except LabkitError:
                problems.append(f"{key}={value}: out of range, allowed {f.range_text()}{f.hint}; Train stays "
                                f"disabled until {_label(key)} is changed")
        cfg.set(key, parsed)
    return cfg, problems


def query_from_config(cfg: Config, base: Config | None = None) -> str:
    """The query string (no '?') holding every setting of `cfg` that differs from `base` (the defaults)."""
    items = [(path, value_text(v)) for path, v in differing(cfg, base).items() if path not in NOT_FROM_LINKS]
    return urlencode(items, quote_via=quote, safe=",")
