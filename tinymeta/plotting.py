"""matplotlib, loaded only when a plot is drawn (it costs ~0.3 s to import), with the
file-only Agg backend when there is no display."""
import os
import sys
from types import ModuleType


def pyplot() -> ModuleType:
    """``matplotlib.pyplot``, imported on first use; on a Linux machine without a display the
    Agg backend is chosen first, so plots are written to files instead of failing."""
    import matplotlib
    if "matplotlib.pyplot" not in sys.modules and sys.platform.startswith("linux") \
            and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt
