"""The operations runbooks (runbooks/operations/) name what exists: every playbook has its page,
every page is indexed, and every command a page gives (make targets, playbooks, their -e
variables) is one the repository has; a page naming something that does not exist fails."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = ROOT / "runbooks" / "operations"
PLAYBOOKS = ROOT / "playbooks"
INDEX = ROOT / "runbooks" / "README.md"

MAKE = re.compile(r"\bmake ([a-z][a-z-]+)")
PLAYBOOK = re.compile(r"\b([a-z][a-z0-9-]+\.yml)\b")
EXTRA_VAR = re.compile(r"-e \"?'?([a-z_]+)=")
PAGE_OF = {
    "backup.yml": "backup-restore.md",
    "restore.yml": "backup-restore.md",
    "rotate-oauth2-secret.yml": "rotate-oauth2-secret.md",
    "rotate-signing-key.yml": "rotate-signing-key.md",
    "rotate-tls.yml": "rotate-tls.md",
    "flush-cache.yml": "flush-cache.md",
    "rollback.yml": "rollback.md",
    "scale.yml": "scaling.md",
}


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][a-z-]*):", text, re.M))


def playbook_text(name: str) -> str:
    """The playbook and the task files it includes."""
    text = (PLAYBOOKS / name).read_text()
    for task_file in re.findall(r"tasks/([a-z-]+\.yml)", text):
        text += (PLAYBOOKS / "tasks" / task_file).read_text()
    return text


def problems(page: str, text: str) -> list[str]:
    """What ``text`` (a runbook page) names that the repository does not have."""
    found: list[str] = []
    targets = make_targets()
    for target in MAKE.findall(text):
        if target not in targets:
            found.append(f"{page}: make {target}: no such target")
    books = [b for b in PLAYBOOK.findall(text) if b not in {"alertmanager.yml"}]
    for book in books:
        if not (PLAYBOOKS / book).is_file():
            found.append(f"{page}: {book}: no such playbook")
    sources = "".join(playbook_text(b) for b in books if (PLAYBOOKS / b).is_file())
    for line in text.splitlines():
        for var in EXTRA_VAR.findall(line):
            if not re.search(rf"\b{var}\b", sources):
                found.append(f"{page}: -e {var}: no playbook named on the page reads it")
    return found


def test_every_playbook_has_its_page() -> None:
    assert sorted(p.name for p in PLAYBOOKS.glob("*.yml")) == sorted(PAGE_OF)
    for book, page in PAGE_OF.items():
        assert book in (PAGES / page).read_text(), f"{page} does not name {book}"


def test_every_page_is_indexed() -> None:
    index = INDEX.read_text()
    for page in PAGES.glob("*.md"):
        assert f"operations/{page.name}" in index, page.name


@pytest.mark.orr(
    "2.3-05", "4.1-04", "4.1-05", "4.1-06", "4.1-07", "4.1-08", "4.4-07", "4.6-05", "8.2-01"
)
@pytest.mark.parametrize("page", sorted(p.name for p in PAGES.glob("*.md")))
def test_every_command_a_page_gives_exists(page: str) -> None:
    assert problems(page, (PAGES / page).read_text()) == []


def test_a_page_naming_what_does_not_exist_is_caught() -> None:
    text = (
        "make restore-all\nansible-playbook restore-everything.yml\nrestore.yml -e backup_nmae=x\n"
    )
    assert problems("bad.md", text) == [
        "bad.md: make restore-all: no such target",
        "bad.md: restore-everything.yml: no such playbook",
        "bad.md: -e backup_nmae: no playbook named on the page reads it",
    ]
