"""Try style-transfer parameters by hand and watch the picture form.

Three parts: ``settings`` (what one Run does, a frozen dataclass), ``session``
(runs in a background thread, their history, save, restore, compare; no
widgets) and ``view`` (the ipywidgets that lay out the controls and forward
clicks to the session). ``Explorer`` is the view, as a notebook shows it.
"""

from .session import PREVIEW_EVERY, Comparison, Listener, Preview, Run, Session
from .settings import SIZE, STEPS, UPLOADED, Settings
from .view import Explorer

__all__ = ["PREVIEW_EVERY", "SIZE", "STEPS", "UPLOADED", "Comparison", "Explorer", "Listener", "Preview", "Run",
           "Session", "Settings"]
