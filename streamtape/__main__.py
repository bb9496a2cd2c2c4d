"""``python -m streamtape`` is the ``streamtape`` command."""

from .cli import main

raise SystemExit(main())
