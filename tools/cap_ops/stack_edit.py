"""Change an environment's ``Pulumi.<env>.yaml`` the GitOps way: edit, validate, write.

The playbooks that change a cluster (``rollback.yml``, ``scale.yml``) change git, not the
cluster: they set keys of the stack file here, render ``deploy/<env>/`` and commit. An edit keeps
the file's comments and layout (ruamel round trip), is checked by the same typed config the
Pulumi program and the renderer use (:mod:`infra.config`), and is written atomically only when
it is valid; a refused edit leaves the file as it was and says why in one line.

:func:`image_history` reads the images an environment ran from git, newest first, for a
rollback to the one before.
"""

from __future__ import annotations

import io
import os
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.cloud import outputs as cloud_outputs
from infra.config import KEY_PREFIX, ConfigError, EnvConfig, from_values
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap


class StackEditError(Exception):
    """An edit that was refused; the message is one line."""


def _yaml() -> YAML:
    yaml = YAML(typ="rt", pure=True)
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def stack_file(root: Path, env: str) -> Path:
    return root / f"Pulumi.{env}.yaml"


def _values(document: Any) -> dict[str, Any]:
    config = document.get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        raise StackEditError("config: expected a mapping")
    return {k.removeprefix(KEY_PREFIX): v for k, v in config.items() if k.startswith(KEY_PREFIX)}


def _set(document: CommentedMap, dotted: str, value: Any) -> None:
    section, *path = dotted.split(".")
    parent: Any = document["config"]
    key = KEY_PREFIX + section
    for name in path:
        if not isinstance(parent.get(key), dict):
            raise StackEditError(f"{KEY_PREFIX}{dotted}: no such key")
        parent, key = parent[key], name
    if key not in parent:
        raise StackEditError(f"{KEY_PREFIX}{dotted}: no such key")
    parent[key] = value


@dataclass(frozen=True)
class Edit:
    """The outcome of :func:`set_values`."""

    path: Path
    changed: bool
    before: dict[str, Any]
    """The old value of every key that was set (dotted key -> value)."""
    config: EnvConfig


def _get(values: Mapping[str, Any], dotted: str) -> Any:
    current: Any = values
    for name in dotted.split("."):
        current = current.get(name) if isinstance(current, Mapping) else None
    return current


def set_values(root: Path, env: str, changes: Mapping[str, Any], *, write: bool = True) -> Edit:
    """Set dotted keys (``scaling.hpa.max_replicas``) of ``Pulumi.<env>.yaml``.

    Only keys that exist can be set. The edited config must load; else :class:`StackEditError`
    and nothing is written. ``write=False`` validates only (check mode).
    """
    path = stack_file(root, env)
    yaml = _yaml()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StackEditError(f"{path.name}: cannot read: {exc.strerror}") from None
    document = yaml.load(text)
    before = {key: _get(_values(document), key) for key in changes}
    for key, value in changes.items():
        _set(document, key, value)
    try:
        config = from_values(env, _values(document), path.name)
    except ConfigError as exc:
        raise StackEditError(str(exc)) from None
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    changed = buffer.getvalue() != text
    if changed and write:
        _replace(path, buffer.getvalue())
    return Edit(path=path, changed=changed, before=before, config=config)


def _replace(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (never half a file)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class ImageRecord:
    """The image one commit of the stack file names."""

    commit: str
    version: str
    reference: str
    """``repository@digest`` or ``repository:tag``."""
    digest: str | None
    tag: str | None


def _git(root: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["?"])[-1]
        raise StackEditError(f"git {args[0]}: {last}")
    return result.stdout


def image_history(root: Path, env: str, limit: int = 50) -> list[ImageRecord]:
    """The image of each commit that changed ``Pulumi.<env>.yaml``, newest first (at most
    ``limit`` commits); consecutive commits with the same image appear once."""
    name = stack_file(root, env).name
    commits = _git(root, "log", f"-{limit}", "--format=%H", "--", name).split()
    records: list[ImageRecord] = []
    yaml = YAML(typ="safe", pure=True)
    outputs = cloud_outputs.read(env, root)
    for commit in commits:
        try:
            image = _values(yaml.load(_git(root, "show", f"{commit}:{name}"))).get("image")
        except StackEditError:
            continue
        if not isinstance(image, dict) or not (image.get("digest") or image.get("tag")):
            continue
        # The repository is the cloud's (infra/outputs/<env>.yaml); older stack files held it.
        repository = image.get("repository") or outputs.get("repository_url", "<repository>")
        digest, tag = image.get("digest"), image.get("tag")
        reference = f"{repository}@{digest}" if digest else f"{repository}:{tag}"
        if records and records[-1].reference == reference:
            records[-1] = ImageRecord(commit, str(image.get("version")), reference, digest, tag)
            continue
        records.append(ImageRecord(commit, str(image.get("version")), reference, digest, tag))
    return records
