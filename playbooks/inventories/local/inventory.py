#!/usr/bin/env python3
"""The local inventory, from the facts' own homes (tools/cap_ops/inventory.py)."""

from pathlib import Path

from cap_ops.inventory import main

main("local", Path(__file__).resolve().parents[3])
