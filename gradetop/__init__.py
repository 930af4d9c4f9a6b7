"""gradetop: a live terminal monitor for ML workflows.

This package is the public API that user code imports; it must stay tiny and
import nothing heavy, because it is imported inside the monitored workflow.
"""

from gradetop._version import __version__

__all__ = ["__version__"]
