"""Checks of the ORR report's HTML page against its JSON, on the page's text or on the DOM a
browser made of it (``chromium --dump-dom``): the verdict, every total, every line once, links
that resolve inside the page and nothing loaded from outside."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

from cap_ops.orr.render_html import line_anchor
from cap_ops.orr.report import Report, Status
from support.require import need

EXTERNAL_TAGS = {"script", "link", "iframe", "img", "object", "embed", "base"}


class Page(HTMLParser):
    """What the checks read from a page."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.hrefs: list[str] = []
        self.loads: list[str] = []
        self.verdict = ""
        self.counts: dict[tuple[str, str], str] = {}
        self._into: tuple[str, str] | None = None
        self._in_verdict = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k: v or "" for k, v in attrs}
        if "id" in attr:
            self.ids.append(attr["id"])
        if "href" in attr:
            self.hrefs.append(attr["href"])
        if tag in EXTERNAL_TAGS or "src" in attr:
            self.loads.append(f"<{tag}>")
        self._in_verdict = attr.get("id") == "verdict"
        if "data-section" in attr and "data-count" in attr:
            self._into = (attr["data-section"], attr["data-count"])
            self.counts[self._into] = ""

    def handle_endtag(self, tag: str) -> None:
        self._into = None
        self._in_verdict = False

    def handle_data(self, data: str) -> None:
        if self._into:
            self.counts[self._into] += data
        if self._in_verdict:
            self.verdict += data


def problems(html: str, report: Report) -> list[str]:
    """One line per way the page ``html`` differs from ``report`` or is not self-contained."""
    page = Page(html)
    found = []
    if page.verdict.strip() != report.verdict:
        found.append(f"verdict: page says {page.verdict.strip()!r}, JSON {report.verdict!r}")
    expected = {"all": report.summary} | {s.section: s.totals for s in report.sections}
    for section, totals in expected.items():
        for name in ["total", *(s.value for s in Status)]:
            shown = page.counts.pop((section, name), None)
            if shown is None or shown.strip() != str(getattr(totals, name)):
                found.append(f"{section} {name}: page shows {shown}, JSON {getattr(totals, name)}")
    found += [f"a total the JSON does not have: {key}" for key in page.counts]
    targets = set(page.ids)
    for href in page.hrefs:
        if not href.startswith("#"):
            found.append(f"link out of the page: {href}")
        elif href[1:] not in targets:
            found.append(f"broken link: {href}")
    found += [f"loads something: {tag}" for tag in page.loads]
    if "url(" in html:
        found.append("a url( in the page")
    found += [
        f"id {i} is given {page.ids.count(i)} times" for i in set(page.ids) if page.ids.count(i) > 1
    ]
    found += [f"line {x.id} has no row" for x in report.lines if line_anchor(x.id) not in targets]
    return found


def chromium() -> str:
    path = shutil.which("chromium")
    need(path is not None, "chromium (Debian package chromium) for the headless check")
    assert path is not None
    return path


def headless(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Chromium headless on ``page`` with a throw-away profile; fails on a non-zero exit."""
    done = subprocess.run(
        [chromium(), "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
         f"--user-data-dir={profile}", *args, page.as_uri()],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done
