"""No breaking change of the published API contract (`make contract-check`, ORR 5.2-03).

``python -m cap_ops.contract check [--base REF]`` compares ``openapi/openapi.yaml`` with the
document of the commit that gave prod its image (the contract prod's clients rely on; read from
the git history of ``Pulumi.prod.yaml``, so it needs the full history) or of ``REF``.
``python -m cap_ops.contract diff BASE HEAD`` compares two files. Both judge by Optic's
breaking-change rules (``@useoptic/optic``, pinned by ``tools/optic/package-lock.json`` and
installed into ``.tools/optic`` by ``make optic``), offline and without telemetry. Each breaking
change is one line, exit 1; a bad ref or a missing tool is one line, exit 2.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from infra.config import REPO_ROOT

from cap_ops.promote import HISTORY_LIMIT
from cap_ops.stack_edit import StackEditError, image_history

DOCUMENT = Path("openapi") / "openapi.yaml"
OPTIC = REPO_ROOT / ".tools" / "optic" / "node_modules" / ".bin" / "optic"
INSTALL_COMMAND = "make optic"
TIMEOUT_S = 300

_OPERATION = re.compile(r"^\S*\s*(GET|PUT|POST|DELETE|PATCH|HEAD|OPTIONS|TRACE) (\S+):(\s|$)")
_FINDING = re.compile(r"^\s*x \[(?P<rule>[^\]]+)\] (?P<message>.+?)\s*$")


class ContractError(Exception):
    """The check could not run: a bad ref, no history, Optic missing or failing. One line."""


def breaking_changes(base: Path, head: Path, optic: Path = OPTIC) -> list[str]:
    """Optic's breaking changes from ``base`` to ``head``, one line each (empty: compatible)."""
    if not optic.exists():
        raise ContractError(f"Optic is not installed at {optic}: run {INSTALL_COMMAND}")
    if shutil.which("node") is None:
        raise ContractError("Optic needs Node.js (>= 20) on PATH")
    # Loose validation: Optic's own OpenAPI 3.1 schema refuses the root `jsonSchemaDialect`.
    paths = [str(base.resolve()), str(head.resolve())]
    command = [str(optic), "diff", *paths, "--check", "--validation", "loose"]
    # Without CI=true: in its CI mode Optic writes ci-run-details.json into its working folder
    # for Optic Cloud; and it runs in a scratch folder, so nothing lands in the checkout.
    environ = {k: v for k, v in os.environ.items() if k != "CI"}
    environ.update(OPTIC_TELEMETRY_LEVEL="off", NO_COLOR="1")
    try:
        with tempfile.TemporaryDirectory(prefix="cap-optic-") as scratch:
            result = subprocess.run(
                command,
                capture_output=True,
                text=True,
                env=environ,
                cwd=scratch,
                timeout=TIMEOUT_S,
                check=False,
            )
    except subprocess.TimeoutExpired:
        raise ContractError(f"Optic did not answer within {TIMEOUT_S} s") from None
    findings = _findings(result.stdout)
    if result.returncode != 0 and not findings:
        detail = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()[-1]
        raise ContractError(f"Optic failed (exit {result.returncode}): {detail}")
    return findings


def _findings(report: str) -> list[str]:
    operation = "document"
    findings = []
    for line in report.splitlines():
        if match := _OPERATION.match(line):
            operation = f"{match[1]} {match[2]}"
        elif match := _FINDING.match(line):
            findings.append(f"{operation}: {match['message']} [{match['rule']}]")
    return findings


def prod_commit(root: Path) -> str:
    """The commit that gave ``Pulumi.prod.yaml`` the image prod runs now."""
    try:
        history = image_history(root, "prod", HISTORY_LIMIT)
    except StackEditError as exc:
        raise ContractError(str(exc)) from None
    if not history:
        raise ContractError("no commit gives prod an image: pass --base REF (full history?)")
    return history[0].commit


def document_at(root: Path, ref: str, into: Path) -> Path:
    """Write ``openapi/openapi.yaml`` as of ``ref`` into ``into``; return the file."""
    result = subprocess.run(
        ["git", "-C", str(root), "show", f"{ref}:{DOCUMENT.as_posix()}"],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        reason = result.stderr.decode(errors="replace").strip().splitlines()
        raise ContractError(f"{DOCUMENT} at {ref}: {reason[-1] if reason else 'not found'}")
    target = into / f"base-{DOCUMENT.name}"
    target.write_bytes(result.stdout)
    return target


def check(root: Path, base: str | None = None) -> tuple[str, list[str]]:
    """(what was compared, the breaking changes) of the working document against ``base``."""
    ref = base or prod_commit(root)
    with tempfile.TemporaryDirectory(prefix="cap-contract-") as scratch:
        baseline = document_at(root, ref, Path(scratch))
        changes = breaking_changes(baseline, root / DOCUMENT)
    what = f"{DOCUMENT} against {ref[:12]}" + ("" if base else " (the commit prod runs)")
    return what, changes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cap_ops.contract", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check_parser = commands.add_parser("check", help="the working document against prod's")
    check_parser.add_argument("--base", help="a git ref (default: the commit prod runs)")
    check_parser.add_argument("--root", type=Path, default=REPO_ROOT, help=argparse.SUPPRESS)
    diff_parser = commands.add_parser("diff", help="two documents")
    diff_parser.add_argument("base", type=Path)
    diff_parser.add_argument("head", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            what, changes = check(args.root, args.base)
        else:
            for path in (args.base, args.head):
                if not path.is_file():
                    raise ContractError(f"{path}: no such file")
            what, changes = (
                f"{args.head} against {args.base}",
                breaking_changes(args.base, args.head),
            )
    except ContractError as exc:
        print(f"contract: {exc}", file=sys.stderr)
        return 2
    for change in changes:
        print(f"contract: breaking: {change}", file=sys.stderr)
    if changes:
        print(f"contract: {len(changes)} breaking change(s) in {what}", file=sys.stderr)
        return 1
    print(f"contract: no breaking change in {what}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
