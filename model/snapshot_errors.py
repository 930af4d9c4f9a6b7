"""The one error type of snapshot reading: its message is one line for the user."""


class SnapshotError(Exception):
    """A file that cannot be read as a snapshot."""
