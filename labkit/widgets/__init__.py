"""The lab's widgets (ipywidgets): `Lab()` is the whole dashboard; the tabs are usable on their own."""
from .app import Lab

__all__ = ["Lab"]
