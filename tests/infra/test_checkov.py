"""Checkov (kubernetes framework) over every rendered environment in deploy/.

checkov runs from its own venv, ``.tools/checkov``, built by ``tools/checkov/bootstrap.sh`` from
the hash-pinned ``tools/checkov/requirements.txt`` (``make checkov``; a prerequisite of ``make
test``). Without that venv these tests skip, except under ``CI=true`` where they fail.

The only skips are those of ``infra/checkov-skips.yaml`` (scope ``all`` or an environment ->
check id -> reason); the file is checked too: every reason is filled in and every skip is still
needed. Each environment is scanned once, without skips, and the skips are applied to its
report: that is exactly what ``--skip-check`` does (it only drops those ids from the report), at
half the cost, and both the gate and the stale-skip test read the same run. ``--skip-check``
itself is exercised on the bad sample (``all`` skips). The checkov runs of the module (a few
seconds each, mostly imports) start together on a thread pool.

checkov scans a copy of ``deploy/<env>/`` in which an Argo Rollout that carries a pod template
is presented as a Deployment: checkov knows no Rollout, and would otherwise skip the workload
without a word. Its findings then read ``Deployment.<ns>.<name>`` in ``rollout-<name>.yaml``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SKIPS_FILE = ROOT / "infra" / "checkov-skips.yaml"
CHECKOV = ROOT / ".tools" / "checkov" / "bin" / "checkov"
ENVS = tuple(sorted(p.name for p in DEPLOY.iterdir() if p.is_dir()))
ALL = "all"
TIMEOUT = 240
# Kinds whose pod template checkov's container checks read.
POD_KINDS = frozenset(
    {
        "Pod",
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "ReplicaSet",
        "ReplicationController",
        "Job",
        "CronJob",
    }
)
# What a privileged, root, limitless Deployment must trip (see _BAD_DEPLOYMENT).
BAD_MUST_FAIL = frozenset(
    {
        "CKV_K8S_16",  # privileged container
        "CKV_K8S_20",  # allowPrivilegeEscalation
        "CKV_K8S_23",  # root container
        "CKV_K8S_11",  # no CPU limit
        "CKV_K8S_13",  # no memory limit
    }
)
_BAD_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: bad
  namespace: bad
spec:
  replicas: 1
  selector:
    matchLabels: {app: bad}
  template:
    metadata:
      labels: {app: bad}
    spec:
      containers:
      - name: bad
        image: registry.example.com/bad:latest
        securityContext:
          privileged: true
          runAsUser: 0
          runAsNonRoot: false
          allowPrivilegeEscalation: true
"""


@dataclass(frozen=True)
class Finding:
    check_id: str
    check_name: str
    resource: str
    file: str

    def __str__(self) -> str:
        return f"{self.check_id} {self.resource} in {self.file}: {self.check_name}"


@dataclass(frozen=True)
class Scan:
    argv: tuple[str, ...]
    failed: tuple[Finding, ...]
    checked_resources: frozenset[str]
    passed: int
    parsing_errors: int

    @property
    def failed_ids(self) -> frozenset[str]:
        return frozenset(f.check_id for f in self.failed)


@dataclass(frozen=True)
class Scans:
    envs: dict[str, Future[Scan]]
    staged: dict[str, Path]
    bad: Future[Scan]


def _yaml() -> YAML:
    return YAML(typ="safe", pure=True)


def _load_skips() -> Any:
    return _yaml().load(SKIPS_FILE.read_text(encoding="utf-8"))


def _scope(skips: Any, scope: str) -> dict[str, Any]:
    """The skips of one scope; lenient, since test_skips_file_is_well_formed judges the shape."""
    entries = skips.get(scope) if isinstance(skips, dict) else None
    return entries if isinstance(entries, dict) else {}


def _skip_ids(skips: Any, env: str) -> list[str]:
    return sorted({str(i) for i in _scope(skips, ALL)} | {str(i) for i in _scope(skips, env)})


def _require_checkov() -> None:
    if CHECKOV.is_file():
        return
    message = f"no checkov venv at {CHECKOV}: run `make checkov` (tools/checkov/bootstrap.sh)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _yaml_files(directory: Path) -> list[Path]:
    """Every YAML file under directory, subfolders included (checkov -d recurses too)."""
    return sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def _stage(env: str, root: Path) -> Path:
    """Copy deploy/<env>/ under root; a Rollout with a pod template becomes a Deployment."""
    target = root / env
    shutil.copytree(DEPLOY / env, target)
    yaml = _yaml()
    for path in _yaml_files(target):
        documents = list(yaml.load_all(path.read_text(encoding="utf-8")))
        if any(_is_templated_rollout(doc) for doc in documents):
            with path.open("w", encoding="utf-8") as out:
                yaml.dump_all([_as_deployment(doc) for doc in documents], out)
    return target


def _is_templated_rollout(doc: Any) -> bool:
    return (
        isinstance(doc, dict)
        and doc.get("kind") == "Rollout"
        and str(doc.get("apiVersion", "")).startswith("argoproj.io/")
        and isinstance(doc.get("spec"), dict)
        and "template" in doc["spec"]
    )


def _as_deployment(doc: Any) -> Any:
    if not _is_templated_rollout(doc):
        return doc
    spec = {k: v for k, v in doc["spec"].items() if k not in ("strategy", "workloadRef")}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": doc["metadata"],
        "spec": spec,
    }


def _carries_pods(doc: Any) -> bool:
    """A kind checkov's container checks read, or any other object with a pod template."""
    if not isinstance(doc, dict):
        return False
    if doc.get("kind") in POD_KINDS:
        return True
    spec = doc.get("spec")
    template = spec.get("template") if isinstance(spec, dict) else None
    pod = template.get("spec") if isinstance(template, dict) else None
    return isinstance(pod, dict) and "containers" in pod


def _workloads(directory: Path) -> list[tuple[str, str]]:
    """(kind, name) of every object in directory that checkov's pod checks should cover."""
    found = []
    yaml = _yaml()
    for path in _yaml_files(directory):
        for doc in yaml.load_all(path.read_text(encoding="utf-8")):
            if _carries_pods(doc):
                found.append((str(doc["kind"]), str(doc["metadata"]["name"])))
    return found


def _findings(checks: Any, prefix: str) -> list[Finding]:
    return [
        Finding(
            check_id=str(c["check_id"]),
            check_name=str(c.get("check_name", "")),
            resource=str(c.get("resource", "")),
            file=prefix + str(c.get("file_path", "")),
        )
        for c in checks or ()
    ]


def _checkov(directory: Path, skip: Sequence[str], prefix: str) -> Scan:
    """Run checkov on directory (cwd: its parent, so file paths read /<dir>/<file>)."""
    argv = [str(CHECKOV), "-d", directory.name, "--framework", "kubernetes"]
    argv += ["--skip-download", "--compact", "-o", "json"]
    if skip:
        argv += ["--skip-check", ",".join(skip)]
    proc = subprocess.run(
        argv,
        cwd=directory.parent,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    # 0: nothing failed, 1: something failed; anything else is checkov itself failing.
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{argv} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    try:
        output = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise RuntimeError(f"{argv}: no JSON on stdout ({exc}):\n{proc.stderr[-3000:]}") from exc
    reports = output if isinstance(output, list) else [output]
    failed: list[Finding] = []
    checked: set[str] = set()
    passed = parsing_errors = 0
    for report in reports:
        # A directory without any resource gives a bare summary, without "results".
        summary = report.get("summary", report)
        results = report.get("results", {})
        passed += int(summary.get("passed", 0))
        parsing_errors += int(summary.get("parsing_errors", 0))
        failed += _findings(results.get("failed_checks"), prefix)
        for check in [*results.get("passed_checks", ()), *results.get("failed_checks", ())]:
            checked.add(str(check.get("resource", "")))
    return Scan(tuple(argv), tuple(failed), frozenset(checked), passed, parsing_errors)


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scans]:
    _require_checkov()
    skips = _load_skips()
    root = tmp_path_factory.mktemp("checkov")
    staged = {env: _stage(env, root) for env in ENVS}
    bad_dir = root / "bad-sample"
    bad_dir.mkdir()
    (bad_dir / "deployment-bad.yaml").write_text(_BAD_DEPLOYMENT, encoding="utf-8")
    prefix = DEPLOY.relative_to(ROOT).as_posix()
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        bad = pool.submit(_checkov, bad_dir, _skip_ids(skips, ALL), str(root))
        envs = {
            env: pool.submit(_checkov, directory, (), prefix) for env, directory in staged.items()
        }
        yield Scans(envs, staged, bad)


def test_skips_file_is_well_formed() -> None:
    skips = _load_skips()
    assert isinstance(skips, dict), f"{SKIPS_FILE}: expected a mapping scope -> id -> reason"
    problems = []
    for scope, entries in skips.items():
        if scope != ALL and scope not in ENVS:
            problems.append(f"{scope}: unknown scope (expected {ALL!r} or one of {ENVS})")
        if not isinstance(entries, dict):
            problems.append(f"{scope}: expected a mapping check id -> reason, got {entries!r}")
            continue
        for check_id, reason in entries.items():
            if not (isinstance(check_id, str) and check_id.startswith(("CKV_K8S_", "CKV2_K8S_"))):
                problems.append(f"{scope}.{check_id}: not a checkov Kubernetes check id")
            if not (isinstance(reason, str) and reason.strip()):
                problems.append(f"{scope}.{check_id}: every skip needs a reason")
            if scope != ALL and check_id in _scope(skips, ALL):
                problems.append(f"{scope}.{check_id}: already skipped under {ALL}")
    assert not problems, f"{SKIPS_FILE}:\n" + "\n".join(problems)


@pytest.mark.parametrize("env", ENVS)
def test_env_passes_checkov(scans: Scans, env: str) -> None:
    scan = scans.envs[env].result()
    assert scan.parsing_errors == 0, f"checkov could not parse part of deploy/{env}"
    assert scan.passed > 0, f"checkov checked nothing in deploy/{env}: {scan.argv}"
    skipped = set(_skip_ids(_load_skips(), env))
    failed = sorted((f for f in scan.failed if f.check_id not in skipped), key=str)
    if failed:
        pytest.fail(
            f"checkov: {len(failed)} failed check(s) in deploy/{env}; fix the model "
            f"(infra/model/), or skip in {SKIPS_FILE.relative_to(ROOT)} only what does not "
            "apply:\n" + "\n".join(f"  {f}" for f in failed),
            pytrace=False,
        )


@pytest.mark.parametrize("env", ENVS)
def test_env_workloads_are_scanned(scans: Scans, env: str) -> None:
    """Every pod-carrying object was checked (a kind checkov ignores would pass silently)."""
    scan = scans.envs[env].result()
    workloads = _workloads(scans.staged[env])
    assert workloads, f"deploy/{env}: no workload found"
    missed = [
        f"{kind}/{name}"
        for kind, name in workloads
        if not any(
            r.startswith(f"{kind}.") and r.endswith(f".{name}") for r in scan.checked_resources
        )
    ]
    assert not missed, f"checkov did not check {missed} in deploy/{env}"


@pytest.mark.parametrize("env", ENVS)
def test_skips_are_still_needed(scans: Scans, env: str) -> None:
    skips = _load_skips()
    failing = scans.envs[env].result().failed_ids
    stale = [
        f"{scope}.{check_id}"
        for scope in (ALL, env)
        for check_id in _scope(skips, scope)
        if check_id not in failing
    ]
    assert not stale, (
        f"{SKIPS_FILE.relative_to(ROOT)}: {stale} no longer fail in deploy/{env} without the "
        f"skip: delete them (or, for an {ALL!r} skip, move it under the environments that "
        f"still need it)"
    )


def test_checkov_detects_a_bad_deployment(scans: Scans) -> None:
    """A privileged, root, limitless Deployment fails, even with the `all` skips applied."""
    scan = scans.bad.result()
    missing = BAD_MUST_FAIL - scan.failed_ids
    assert not missing, (
        f"checkov (with the {ALL!r} skips) no longer reports {sorted(missing)} on a privileged, "
        f"root, limitless Deployment; it reported: {sorted(scan.failed_ids)}"
    )
    # The sample trips most container checks (CKV_K8S_40 too: it runs as uid 0): whatever of
    # them is skipped under `all` must be gone from the report.
    leaked = scan.failed_ids & set(_skip_ids(_load_skips(), ALL))
    assert not leaked, f"--skip-check did not take effect for {sorted(leaked)}: {scan.argv}"
