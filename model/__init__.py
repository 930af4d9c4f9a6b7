"""The in-memory model of a monitored workflow. Never imports textual or rich: it must stand without a UI."""
