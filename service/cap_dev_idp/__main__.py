"""``python -m cap_dev_idp``: same as the ``cap-dev-idp`` console script (local and CI only)."""

from cap_dev_idp.cli import main

raise SystemExit(main())
