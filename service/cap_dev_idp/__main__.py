"""``python -m cap_dev_idp``: the development identity provider (local and CI only; not in the
service's wheel or image)."""

from cap_dev_idp.cli import main

raise SystemExit(main())
