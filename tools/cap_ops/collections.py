"""``make collections``: the Ansible collections of ``tools/ansible/collections.txt``, extracted
from the pinned ``ansible`` wheel (``tools/ansible/requirements.txt``, hash-checked by pip) into
``.tools/ansible/collections``, the path ``playbooks/ansible.cfg`` names."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "tools" / "ansible"
TARGET = ROOT / ".tools" / "ansible" / "collections"
STAMP = TARGET / ".installed"


def wanted() -> dict[str, str]:
    """``namespace.name`` -> version, from collections.txt."""
    pins = {}
    for line in (SPEC / "collections.txt").read_text(encoding="utf-8").splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            name, version = entry.split()
            pins[name] = version
    return pins


PIP = ROOT / ".tools" / "bin" / "pip"
"""The bootstrap environment's pip (``make`` creates it; the uv-made ``.venv`` has none)."""


def download(directory: Path) -> Path:
    subprocess.run(
        [
            str(PIP),
            "download",
            "--quiet",
            "--no-deps",
            "--require-hashes",
            "--disable-pip-version-check",
            "-r",
            str(SPEC / "requirements.txt"),
            "-d",
            str(directory),
        ],
        check=True,
    )
    (wheel,) = directory.glob("ansible-*.whl")
    return wheel


def extract(wheel: Path, pins: dict[str, str], target: Path) -> None:
    """Each pinned collection into ``target/ansible_collections/<ns>/<name>``, version-checked."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        for collection, version in pins.items():
            prefix = "ansible_collections/" + collection.replace(".", "/") + "/"
            members = [n for n in names if n.startswith(prefix)]
            if not members:
                raise SystemExit(f"collections: {collection} is not in {wheel.name}")
            manifest = json.loads(archive.read(prefix + "MANIFEST.json"))
            found = manifest["collection_info"]["version"]
            if found != version:
                raise SystemExit(
                    f"collections: {collection} is {found} in {wheel.name}, not {version}"
                )
            for member in members:
                archive.extract(member, target)


def main() -> int:
    pins = wanted()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = download(Path(tmp))
        staging = Path(tmp) / "collections"
        extract(wheel, pins, staging)
        shutil.rmtree(TARGET, ignore_errors=True)
        TARGET.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), TARGET)
    STAMP.write_text("".join(f"{name} {version}\n" for name, version in pins.items()))
    print(f"collections: {', '.join(pins)} in {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
