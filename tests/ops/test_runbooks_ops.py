"""The operations runbooks (runbooks/operations/) name what exists: every playbook has its page,
every page is indexed, and every command a page gives (make targets, playbooks, their -e
variables) is one the repository has; a page naming something that does not exist fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.runbook_commands import problems

ROOT = Path(__file__).resolve().parents[2]
PAGES = ROOT / "runbooks" / "operations"
PLAYBOOKS = ROOT / "playbooks"
INDEX = ROOT / "runbooks" / "README.md"

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
