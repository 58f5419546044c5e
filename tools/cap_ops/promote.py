"""Promote an image, by digest, through dev -> staging -> prod (`make promote`).

``python -m cap_ops.promote ENV sha256:<64 hex> [--version V]`` writes the digest into the image
section of ``Pulumi.<env>.yaml`` (through :mod:`cap_ops.stack_edit`, validated by the stack's
typed config) and re-renders ``deploy/`` (:mod:`infra.render`); Argo CD syncs ``deploy/<env>/``
once the change is committed. The gate: staging accepts only the digest dev runs now, prod only
the digest staging runs now, each with the version of the environment it comes from. A refused
promotion is one line on stderr, exit 1, and changes no file.

``python -m cap_ops.promote check`` (every pull request): prod's digest is one that staging ran
before prod got it, read from the git history of ``Pulumi.staging.yaml`` and
``Pulumi.prod.yaml``; a hand edit of prod's digest fails it. Needs the full history (CI:
``fetch-depth: 0``).
"""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from infra.config import (
    ENVIRONMENTS,
    KEY_PREFIX,
    REPO_ROOT,
    ConfigError,
    EnvConfig,
    from_values,
    load,
)

from cap_ops import stack_edit
from cap_ops.stack_edit import StackEditError, image_history
from infra import render

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
SOURCE = dict(zip(ENVIRONMENTS[1:], ENVIRONMENTS[:-1], strict=True))
"""The environment each one takes its image from: staging from dev, prod from staging."""
HISTORY_LIMIT = 100_000
"""Commits of a stack file's history the check reads (all of them, in practice)."""


class PromotionError(Exception):
    """A refused promotion or a failed check; the message is one line."""


@dataclass(frozen=True)
class Promotion:
    env: str
    digest: str
    version: str
    changed: bool


def _config(root: Path, env: str) -> EnvConfig:
    try:
        return load(env, root)
    except ConfigError as exc:
        raise PromotionError(str(exc)) from None


def _pin_by_digest(root: Path, env: str, digest: str, version: str) -> None:
    """Write an image section that names its image by tag (dev's, until its first promotion)
    as one pinned by ``digest``: the ``tag`` key becomes ``digest`` in its place, comments kept.

    :func:`stack_edit.set_values` sets existing keys only; this is the one edit it cannot make.
    The whole file is validated by the typed config before it is written, as there.
    """
    path = stack_edit.stack_file(root, env)
    yaml = stack_edit._yaml()
    document = yaml.load(path.read_text(encoding="utf-8"))
    image = document["config"][f"{KEY_PREFIX}image"]
    position = list(image).index("tag")
    del image["tag"]
    image.insert(position, "digest", digest)
    image["version"] = version
    try:
        from_values(env, stack_edit._values(document), path.name)
    except ConfigError as exc:
        raise PromotionError(str(exc)) from None
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    stack_edit._replace(path, buffer.getvalue())


def promote(root: Path, env: str, digest: str, version: str | None = None) -> Promotion:
    """Write ``digest`` into ``env``'s stack file and render ``deploy/``; refuse (and change
    nothing) a malformed digest, an unknown environment, or a digest the environment before
    ``env`` does not run."""
    if env not in ENVIRONMENTS:
        raise PromotionError(f"{env}: no such environment (one of {', '.join(ENVIRONMENTS)})")
    if not DIGEST.fullmatch(digest):
        raise PromotionError(f"{digest!r}: not an image digest (sha256:<64 lowercase hex>)")
    current = _config(root, env)
    if env in SOURCE:
        source = _config(root, SOURCE[env])
        if source.image.digest != digest:
            raise PromotionError(
                f"{env} accepts only the digest {SOURCE[env]} runs "
                f"({source.image.digest or source.image.reference}), not {digest}"
            )
        version = version or source.image.version
        if version != source.image.version:
            raise PromotionError(
                f"{env}: {digest} is version {source.image.version} in {SOURCE[env]}, not {version}"
            )
    version = version or current.image.version
    if current.image.digest is None:
        _pin_by_digest(root, env, digest, version)
        changed = True
    else:
        try:
            values = {"image.digest": digest, "image.version": version}
            changed = stack_edit.set_values(root, env, values).changed
        except StackEditError as exc:
            raise PromotionError(str(exc)) from None
    render.write(root / "deploy", root)
    return Promotion(env=env, digest=digest, version=version, changed=changed)


def _is_strict_ancestor(root: Path, older: str, newer: str) -> bool:
    if older == newer:
        return False
    result = subprocess.run(
        ["git", "-C", str(root), "merge-base", "--is-ancestor", older, newer],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def check(root: Path) -> str:
    """Prod's digest was run by staging in a commit before the one that gave it to prod (or,
    for an uncommitted prod digest, at or before HEAD). Returns what was checked."""
    prod = _config(root, "prod").image.digest
    try:
        prod_history = image_history(root, "prod", HISTORY_LIMIT)
        staging_history = image_history(root, "staging", HISTORY_LIMIT)
        head = stack_edit._git(root, "rev-parse", "HEAD").strip()
    except StackEditError as exc:
        raise PromotionError(str(exc)) from None
    committed = bool(prod_history) and prod_history[0].digest == prod
    introduced = prod_history[0].commit if committed else head
    for record in staging_history:
        if record.digest != prod:
            continue
        if _is_strict_ancestor(root, record.commit, introduced) or (
            not committed and record.commit == head
        ):
            return f"prod runs {prod}, which staging ran from commit {record.commit[:12]}"
    raise PromotionError(
        f"prod runs {prod}, which staging never ran before it: promote through staging "
        "(make promote ENV=staging, then ENV=prod), never edit prod's digest by hand"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cap_ops.promote", description=__doc__)
    parser.add_argument("env", help=f"{', '.join(ENVIRONMENTS)}, or check")
    parser.add_argument("digest", nargs="?", help="sha256:<64 hex>")
    parser.add_argument("--version", help="the image's version (default: its source's)")
    parser.add_argument(
        "--root", type=Path, default=REPO_ROOT, help="the repository (default: this one)"
    )
    args = parser.parse_args(argv)
    try:
        if args.env == "check":
            print(check(args.root))
            return 0
        if args.digest is None:
            raise PromotionError(f"promote {args.env}: give the digest (DIGEST=sha256:...)")
        done = promote(args.root, args.env, args.digest, args.version)
    except PromotionError as exc:
        print(f"promote: {exc}", file=sys.stderr)
        return 1
    verb = "promoted" if done.changed else "already runs"
    print(f"{done.env} {verb} {done.version} ({done.digest}); deploy/{done.env}/ rendered")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
