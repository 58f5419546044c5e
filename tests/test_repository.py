"""The repository stands on its own: no path outside it, and every ORR id a test claims exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from cap_ops.orr.items import ITEMS, Item, id_in_test_name, load_items, unknown_claims
from cap_verifier.typed_yaml import ConfigError

ROOT = Path(__file__).resolve().parents[1]
# Files that may name an outside path: lock files (URLs of their sources) and the CI entry
# point, the one place that names the CRD mirror of the build machines.
EXEMPT = re.compile(r"(^|/)[^/]*\.lock$|^\.ci/run$")
OUTSIDE = (
    re.compile(r"\.\./shared\b"),  # the build machines' reference folder
    re.compile(r"(?<![\w.:/-])/home/[\w.-]+/"),  # a home directory
    re.compile(r"(?<![\w.:/-])/root(?=/)"),  # root's home directory
)


def outside_paths(text: str, parent: Path) -> list[str]:
    """Every path in ``text`` that points outside a repository checked out under ``parent``."""
    patterns = list(OUTSIDE)
    if parent != parent.parent:  # the checkout's own parent folder, e.g. the build workspace
        patterns.append(re.compile(r"(?<![\w.-])" + re.escape(f"{parent}/")))
    return [m.group(0) for p in patterns for m in p.finditer(text)]


def test_no_tracked_file_names_a_path_outside_the_repository() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    found = {}
    for name in filter(None, tracked.split("\0")):
        if EXEMPT.search(name) or not (ROOT / name).is_file():
            continue
        try:
            text = (ROOT / name).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary
        if hits := outside_paths(text, ROOT.parent):
            found[name] = sorted(set(hits))
    assert found == {}


# Spelt in pieces, so that this file itself names no outside path.
WORKSPACE = "/" + "work"


@pytest.mark.parametrize(
    ("text", "hit"),
    [
        (f"schemas in {WORKSPACE}/shared/crds", f"{WORKSPACE}/"),
        ("see .." + "/shared/spec/verifier-api.md", ".." + "/shared"),
        ("cp ~/x /" + "home/alice/.kube/config", "/" + "home/alice/"),
        ("rm -rf /" + "root/.cache", "/" + "root"),
    ],
)
def test_outside_path_check_catches(text: str, hit: str) -> None:
    assert outside_paths(text, Path(WORKSPACE)) == [hit]


def test_outside_path_check_leaves_repository_paths_alone() -> None:
    text = "tests/infra/crd_schemas.py, mysql://root@localhost/db, https://x.example/home/a/"
    assert outside_paths(text, Path(WORKSPACE)) == []


# --- ORR ids -------------------------------------------------------------------------------------


def test_checklist_holds_every_line_once() -> None:
    items = load_items()
    assert len(items) == 233
    assert next(iter(items)) == "1.1-01"
    assert list(items)[-1] == "8.2-04"
    assert {i.split("-")[0] for i in items} >= {"1.1", "2.4", "3.5", "5.1", "8.2"}


def test_checklist_with_a_duplicate_or_bad_id_fails(tmp_path: Path) -> None:
    text = ITEMS.read_text(encoding="utf-8")
    duplicate = tmp_path / "dup.yaml"
    duplicate.write_text(text + '- {id: "1.1-01", section: "1.1 Cluster", title: "again"}\n')
    with pytest.raises(ConfigError, match=r"\[233\]\.id: 1\.1-01 is listed twice"):
        load_items(duplicate)
    bad = tmp_path / "bad.yaml"
    bad.write_text('- {id: "1.1-1", section: "1.1 Cluster", title: "short id"}\n')
    with pytest.raises(ConfigError, match=r"\[0\]\.id: Expected `str` matching"):
        load_items(bad)


def test_every_orr_id_a_test_claims_is_a_line_of_the_checklist(
    request: pytest.FixtureRequest,
) -> None:
    """Over the tests of this run: ``test_orr_<id>_…`` names and ``orr`` markers."""
    claims = [
        (
            item.nodeid,
            getattr(item, "originalname", item.name),
            [i for mark in item.iter_markers("orr") for i in mark.args],
        )
        for item in request.session.items
    ]
    assert unknown_claims(claims, load_items()) == []


def test_claim_check_catches_unknown_orr_ids() -> None:
    items = {"1.2-09": Item(id="1.2-09", section="1.2 Ingress", title="health paths routed")}
    assert id_in_test_name("test_orr_1_2_09_health_paths_routed") == "1.2-09"
    assert unknown_claims([("a", "test_orr_1_2_09_health", ["1.2-09"])], items) == []
    assert unknown_claims([("b", "test_orr_1_2_10_x", [])], items) == [
        "b: ORR 1.2-10 is not a line of the checklist"
    ]
    assert unknown_claims([("c", "test_something", ["9.9-99"])], items) == [
        "c: ORR 9.9-99 is not a line of the checklist"
    ]
    assert unknown_claims([("d", "test_orr_key_panels", [])], items) == [
        "d: a test_orr_ name must start with an id (test_orr_1_2_09_…)"
    ]
