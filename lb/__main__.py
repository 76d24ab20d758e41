"""``python -m lb`` is the ``lb`` command."""

from lb.cli import main

raise SystemExit(main())
