"""``python -m pretrained``: the ``pretrained`` command line."""

from pretrained.cli import main

raise SystemExit(main())
