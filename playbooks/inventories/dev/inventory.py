#!/usr/bin/env python3
"""The dev inventory, from the facts' own homes (tools/cap_ops/inventory.py)."""

from pathlib import Path

from cap_ops.inventory import main

main("dev", Path(__file__).resolve().parents[3])
