"""gradetop's scratch files in the temp folder, named after their owner so that leftovers can be swept.

A monitor killed with SIGKILL cleans nothing up. Every scratch folder or
file is therefore named `gradetop-<kind>-<owner pid>-...`, where the owner
is the gradetop process that made it or, for what belongs to a workflow left
running, the workflow. The next gradetop to start removes those whose owner
is gone (and whose workflow, where one is named inside, is gone too).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile

_NAME = re.compile(r"^gradetop-(?:workflow|windows)-(\d+)-")
WORKFLOW_FILE = "workflow.pid"
"""Inside a workflow's folder (its phase markers and output log): the pid of the workflow that
writes there, which may outlive gradetop."""


def new_folder(kind: str) -> str:
    return tempfile.mkdtemp(prefix=f"gradetop-{kind}-{os.getpid()}-")


def claim(folder: str, workflow_pid: int) -> None:
    """The folder stays while this workflow lives, whatever becomes of gradetop."""
    try:
        with open(os.path.join(folder, WORKFLOW_FILE), "w") as f:
            f.write(str(workflow_pid))
    except OSError:
        pass


def remove(path: str | None) -> None:
    if not path:
        return
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except OSError:
            pass


def _alive(pid: int) -> bool:
    import psutil  # here, not above: a command starts before psutil loads (collectors.launch)

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def sweep(folder: str | None = None) -> list[str]:
    """Remove the scratch left by gradetop processes that died without cleaning up; returns what went."""
    folder = folder or tempfile.gettempdir()
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = _NAME.match(name)
        if not match or _alive(int(match.group(1))):
            continue
        path = os.path.join(folder, name)
        workflow = _workflow_of(path)
        if workflow is not None and _alive(workflow):
            continue
        remove(path)
        removed.append(path)
    return removed


def _workflow_of(path: str) -> int | None:
    try:
        with open(os.path.join(path, WORKFLOW_FILE)) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None
