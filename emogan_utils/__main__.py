"""``python -m emogan_utils`` is the same as the ``emogan`` command."""

from emogan_utils.cli import main

raise SystemExit(main())
