from gradetop.cli.main import main

raise SystemExit(main())
