"""gradetop: a live terminal monitor for ML workflows.

This package is the public API that user code imports; it must stay tiny and
import nothing heavy, because it is imported inside the monitored workflow.

    import gradetop

    with gradetop.phase("preprocess"):
        ...

    @gradetop.phase("train")
    def train(): ...
"""

from gradetop._version import __version__
from gradetop.phases import listening, phase

__all__ = ["__version__", "phase", "listening"]
