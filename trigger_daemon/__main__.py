"""`python -m trigger_daemon` runs the command line."""

from trigger_daemon.cli import main

raise SystemExit(main())
