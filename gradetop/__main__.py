from gradetop.cli.main import entry

entry()
