"""The `gradetop` command line: argument parsing and one module per subcommand."""
