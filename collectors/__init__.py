"""Collectors: py-spy stack sampling and psutil readings, each in its own thread, producing model.records. Never imports textual or rich."""
