"""The lab's error lines as HTML, in one red wherever they appear.

Before this module each tab wrote its own span, in four reds (#a00, #b00, #c00, #b00020): a learner saw
"something failed" in a different colour on every tab.
"""
from __future__ import annotations

import html

ERROR_COLOR = "#b00020"  # the controls' notes use it too (controls.problem_html)


def error_html(text: str) -> str:
    """`text` (plain, escaped here) as an error line."""
    return f"<span style='color:{ERROR_COLOR}'>{html.escape(text)}</span>"


def exception_html(e: BaseException, prefix: str = "") -> str:
    """An exception as an error line: a LabkitError by its message alone (it says what to do), anything else
    with its type, so an unexpected failure reads as one."""
    from ..errors import LabkitError

    text = str(e) if isinstance(e, LabkitError) else f"{type(e).__name__}: {e}"
    return error_html(prefix + text)


def is_error_html(value: str) -> bool:
    """Whether a status line is one `error_html` made."""
    return value.startswith(f"<span style='color:{ERROR_COLOR}'>")

