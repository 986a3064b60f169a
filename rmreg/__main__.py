"""``python -m rmreg``: the ``rmreg`` command."""

from rmreg.cli import main

raise SystemExit(main())
