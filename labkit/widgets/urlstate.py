"""Settings in the dashboard's URL query, as TensorFlow Playground's links: `?optim.lr=0.01&model.init=large`.

Keys are config paths; values are parsed by the config field's type
(`Config.set`), never evaluated. Unknown keys and unreadable values are
reported, not fatal, so a stale link still opens.
"""
from __future__ import annotations

import os
from urllib.parse import parse_qsl, quote, urlencode

from ..config import Config, config_paths
from ..errors import LabkitError
from ..fields import differing, value_text

# where the run store is comes from the lab, never from a link
NOT_FROM_LINKS = ("data.root", "data.folder", "train.out", "train.name")


def read_query_string() -> str:
    """The page's query string as Voila passes it to the kernel (empty in JupyterLab or a plain kernel)."""
    return os.environ.get("QUERY_STRING", "") or ""


def config_from_query(query: str, base: Config | None = None) -> tuple[Config, list[str]]:
    """Apply `query` (with or without a leading '?') to a copy of `base`; returns the config and any problems."""
    cfg = (base or Config()).copy()
    problems: list[str] = []
    paths = config_paths()
    for key, value in parse_qsl(query.lstrip("?"), keep_blank_values=True):
        if key not in paths or key in NOT_FROM_LINKS:
            problems.append(f"ignored unknown setting {key!r} in the link")
            continue
        try:
            cfg.set(key, value)
        except LabkitError as e:
            problems.append(f"ignored {key}={value!r}: {e}")
    return cfg, problems


def query_from_config(cfg: Config, base: Config | None = None) -> str:
    """The query string (no '?') holding every setting of `cfg` that differs from `base` (the defaults)."""
    items = [(path, value_text(v)) for path, v in differing(cfg, base).items() if path not in NOT_FROM_LINKS]
    return urlencode(items, quote_via=quote, safe=",")
