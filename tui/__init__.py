"""The live terminal UI (Textual). Reads only the model; never runs py-spy itself."""
