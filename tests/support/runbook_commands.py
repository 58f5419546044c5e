"""What a runbook page names among the repository's commands: make targets, playbooks and their
``-e`` variables. Shared by the operations pages' test (tests/ops) and the runbook tests
(tests/runbooks)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "playbooks"

MAKE = re.compile(r"\bmake ([a-z][a-z-]+)")
PLAYBOOK = re.compile(r"\b([a-z][a-z0-9-]+\.yml)\b")
EXTRA_VAR = re.compile(r"-e \"?'?([a-z_]+)=")
NOT_PLAYBOOKS = frozenset({"alertmanager.yml"})


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
    books = [b for b in PLAYBOOK.findall(text) if b not in NOT_PLAYBOOKS]
    for book in books:
        if not (PLAYBOOKS / book).is_file():
            found.append(f"{page}: {book}: no such playbook")
    sources = "".join(playbook_text(b) for b in books if (PLAYBOOKS / b).is_file())
    for line in text.splitlines():
        for var in EXTRA_VAR.findall(line):
            if not re.search(rf"\b{var}\b", sources):
                found.append(f"{page}: -e {var}: no playbook named on the page reads it")
    return found
