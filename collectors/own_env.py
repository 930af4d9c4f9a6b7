"""The environment of gradetop's own process, apart from the one a workflow it starts gets.

Loads nothing but `os`: the command line sets it before anything else loads.
"""

from __future__ import annotations

import os

ONE_BLAS_THREAD = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_OURS: set[str] = set()
"""The ONE_BLAS_THREAD variables gradetop set for itself (not the user): a workflow never gets them."""


def one_blas_thread() -> None:
    """Before numpy loads: gradetop's own numpy multiplies no matrices, and with a BLAS thread per core
    importing it cost 0.12 s of CPU instead of 0.06 (OpenBLAS starts them at load). For this process
    only, where the user did not set them: `workflow_environ` leaves them out."""
    for name in ONE_BLAS_THREAD:
        if name not in os.environ:
            os.environ[name] = "1"
            _OURS.add(name)


def workflow_environ() -> dict[str, str]:
    """The environment a workflow gradetop starts gets: the user's, as gradetop was given it."""
    return {name: value for name, value in os.environ.items() if name not in _OURS}
