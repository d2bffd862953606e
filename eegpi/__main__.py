"""`python -m eegpi` is the `eegpi` command."""

from eegpi.cli import main

raise SystemExit(main())
