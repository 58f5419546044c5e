"""The runbooks' cluster paths (playbooks/ with the dev, staging and prod inventories), checked
without a cluster: there is no Kubernetes API server here, so nothing is applied.

- every playbook passes ``ansible-playbook --syntax-check`` with each cluster inventory, and
  ``ansible-inventory --list`` names what ``Pulumi.<env>.yaml`` and ``deploy/<env>/`` say;
- every template of ``playbooks/templates/k8s/`` is rendered by Ansible itself with each cluster
  inventory (a throwaway playbook, one ``ansible-playbook`` run per environment), and so is every
  place a playbook sends one (the module arguments of that task, with its vars, templated as the
  playbook would);
- what would be sent is validated: a full object (the CloudNativePG Backup) against its pinned CRD
  schema, a patch merged (RFC 7386) onto the object git holds for the environment and the result
  validated (CRDs against their pinned schemas, core kinds with ``kubernetes_validate``); the
  patched object must exist in ``deploy/<env>/`` (``state: patched`` on a missing object only
  warns), and each patch says what the runbook means (a restart, a pause, a resume, an abort…);
- a template that does not apply to an environment is asserted not applicable, with the reason
  read from the inventory and checked against the stack file and ``deploy/<env>/``.

All ``ansible-*`` processes start together, once per module, and run in parallel.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cluster_objects import (
    BOOTSTRAP,
    DEPLOY,
    ROOT,
    GitObject,
    Key,
    Obj,
    deploy_objects,
    describe,
    is_rfc3339,
    key,
    merge_patch,
    schema_problems,
)
from infra.charts import ARGOCD, PLATFORM_CHARTS
from infra.config import ENVIRONMENTS, EnvConfig, load_all
from ruamel.yaml import YAML

PLAYBOOKS = ROOT / "playbooks"
TEMPLATES = PLAYBOOKS / "templates" / "k8s"
BIN = Path(sys.executable).parent
PLAYBOOK_FILES = sorted(p.name for p in PLAYBOOKS.glob("*.yml"))
TEMPLATE_FILES = sorted(p.name for p in TEMPLATES.glob("*.j2"))
TIMEOUT = 180

OPERATOR = "test-operator"  # $USER of the ansible runs: the pause records it
REASON = 'emergency: "quota" #1 — INC-42, {not a template}'  # YAML- and JSON-hostile on purpose
TEMPLATE_VARS = {  # the variables the templates' headers name that no inventory holds
    "backup_name": "{{ database_cluster }}-on-demand-test",
    "paused_at": "{{ operation_time }}",
    "paused_by": OPERATOR,
    "paused_reason": REASON,
}
RENAMED = {  # the negative renders (prod): the inventory's names of the objects, changed
    "workload_name": "cap-verifier-renamed",
    "oauth2_external_secret": "cap-verifier-oauth2-renamed",
    "database_cluster": "cap-verifier-db-renamed",
}
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
PAUSED = ("paused-at", "paused-by", "paused-reason")
PAUSE_ANNOTATIONS = tuple(f"cap-verifier-ops/auto-sync-{n}" for n in PAUSED)
REFRESH_ANNOTATION = "argocd.argoproj.io/refresh"
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def stem(template: str) -> str:
    return template.removesuffix(".yml.j2")


# --- the playbooks' own uses of the templates --------------------------------------------------

TASK_KEYWORDS = frozenset(
    {
        "name", "when", "vars", "register", "tags", "loop", "loop_control", "until", "retries",
        "delay", "changed_when", "failed_when", "check_mode", "no_log", "ignore_errors",
        "delegate_to", "run_once", "become", "become_user", "environment", "notify", "args",
        "block", "rescue", "always", "any_errors_fatal", "timeout", "throttle", "diff",
        "module_defaults", "collections", "listen",
    }
)  # fmt: skip
INCLUDES = frozenset(
    {
        "ansible.builtin.import_tasks",
        "ansible.builtin.include_tasks",
        "import_tasks",
        "include_tasks",
    }
)
TEMPLATE_REF = re.compile(r"k8s/([\w.-]+\.j2)")
_YAML = YAML(typ="safe", pure=True)


def _load(path: Path) -> Any:
    return _YAML.load(path.read_text(encoding="utf-8"))


def _module(task: dict[str, Any], where: str) -> str:
    actions = [k for k in task if k not in TASK_KEYWORDS]
    assert len(actions) == 1, f"{where}: {task.get('name')!r}: actions {actions}"
    return actions[0]


@dataclass(frozen=True)
class Task:
    playbook: str
    file: str
    body: dict[str, Any]
    vars: dict[str, Any]
    """The vars in scope: the play's, then each include's and block's, then the task's own."""


def _walk(tasks: Any, playbook: str, file: str, scope: dict[str, Any]) -> Iterator[Task]:
    for task in tasks or []:
        inner = {**scope, **(task.get("vars") or {})}
        if "block" in task:
            for part in ("block", "rescue", "always"):
                yield from _walk(task.get(part), playbook, file, inner)
            continue
        yield Task(playbook, file, task, inner)
        module = _module(task, f"{file}")
        if module in INCLUDES:
            arg = task[module]
            included = arg if isinstance(arg, str) else arg["file"]
            yield from _walk(_load(PLAYBOOKS / included), playbook, included, inner)


def playbook_tasks(playbook: str) -> Iterator[Task]:
    """Every task of ``playbook``, those of the task files it includes or imports too."""
    for play in _load(PLAYBOOKS / playbook):
        scope = dict(play.get("vars") or {})
        for section in ("pre_tasks", "tasks", "post_tasks", "handlers"):
            yield from _walk(play.get(section), playbook, playbook, scope)


@dataclass(frozen=True)
class UseSite:
    """One task of one playbook that sends a template of templates/k8s/ to the cluster."""

    id: str
    where: str
    module: str
    args: dict[str, Any]
    vars: dict[str, Any]
    template: str


def _use_sites() -> list[UseSite]:
    sites: dict[str, UseSite] = {}
    for playbook in PLAYBOOK_FILES:
        for task in playbook_tasks(playbook):
            module = _module(task.body, task.file)
            args = task.body[module]
            if module in INCLUDES or not isinstance(args, dict):
                continue
            found = sorted(set(TEMPLATE_REF.findall(json.dumps(args))))
            if not found:
                continue
            assert len(found) == 1, f"{task.file}: {task.body['name']}: templates {found}"
            site_id = f"{Path(playbook).stem}/{stem(found[0])}"
            where = f"{playbook} > {task.file}: {task.body['name']}"
            if site_id in sites:
                # tasks/cluster-writes.yml, included twice (stop, resume): the same task
                assert sites[site_id].where == where, f"{site_id}: {sites[site_id].where}, {where}"
                continue
            sites[site_id] = UseSite(site_id, where, module, args, task.vars, found[0])
    return sorted(sites.values(), key=lambda s: s.id)


USE_SITES = _use_sites()


def conditions(playbook: str) -> list[str]:
    """Every `when` and every `assert` condition of ``playbook`` and its task files."""
    found: list[str] = []
    for task in playbook_tasks(playbook):
        assertion = task.body.get("ansible.builtin.assert") or {}
        for value in (task.body.get("when"), assertion.get("that")):
            found += [str(v) for v in value] if isinstance(value, list) else [str(value or "")]
    return found


# --- the ansible runs --------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return f"$ {' '.join(self.argv)}\n{self.stdout}\n{self.stderr}"[-6000:]


@dataclass
class Pending:
    """An ``ansible-*`` process started in the background, its output in files."""

    argv: list[str]
    workdir: Path
    cwd: Path
    env: dict[str, str]
    _proc: subprocess.Popen[bytes] | None = None
    _run: Run | None = None

    def start(self) -> Pending:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with (
            (self.workdir / "stdout").open("wb") as out,
            (self.workdir / "stderr").open("wb") as err,
        ):
            self._proc = subprocess.Popen(
                self.argv, cwd=self.cwd, env=self.env, stdout=out, stderr=err
            )
        return self

    def result(self) -> Run:
        if self._run is None:
            assert self._proc is not None
            try:
                code = self._proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                code = self._proc.wait()
            self._run = Run(
                self.argv,
                code,
                (self.workdir / "stdout").read_text(errors="replace"),
                (self.workdir / "stderr").read_text(errors="replace"),
            )
        return self._run

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()


def ansible_argv(command: str, *args: str | Path) -> list[str]:
    return [str(BIN / command), *map(str, args)]


def inventory_path(env: str) -> str:
    return str(PLAYBOOKS / "inventories" / env / "inventory.py")


def ansible_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    return {
        **env,
        "PATH": f"{BIN}:{env.get('PATH', '')}",
        "USER": OPERATOR,
        "ANSIBLE_CONFIG": str(PLAYBOOKS / "ansible.cfg"),
        "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-local"),
        "ANSIBLE_REMOTE_TEMP": str(tmp / "ansible-remote"),
        "ANSIBLE_NOCOLOR": "1",
    }


EMIT = "emit what was rendered"


def _same_scope(sites: list[UseSite]) -> list[list[UseSite]]:
    """``sites`` grouped by identical vars: a group's module arguments can be templated in one
    task, each site seeing exactly the vars of its own scope."""
    groups: dict[str, list[UseSite]] = {}
    for site in sites:
        groups.setdefault(json.dumps(site.vars, sort_keys=True), []).append(site)
    return list(groups.values())


def render_play(renamed: bool) -> list[dict[str, Any]]:
    """A throwaway playbook: the preflight of every playbook (it sets ``operation_time``), then
    each template with TEMPLATE_VARS (and, if ``renamed``, again with RENAMED's names), then the
    module arguments of each use site with the vars in its scope, all templated by Ansible and
    printed as one JSON object (the last task's result; :meth:`Ansible.rendered` reads it)."""
    preflight = str(PLAYBOOKS / "tasks" / "preflight.yml")
    tasks: list[dict[str, Any]] = [{"name": "preflight", "ansible.builtin.import_tasks": preflight}]
    facts = {"operation_time": "operation_time"}
    for prefix, extra in (("template", {}), ("renamed", RENAMED))[: 1 + renamed]:
        rendered = {}
        for index, name in enumerate(TEMPLATE_FILES):
            fact = f"rendered_{prefix}_{index}"
            lookup = f"lookup('ansible.builtin.template', '{TEMPLATES / name}')"
            rendered[fact] = "{{ " + lookup + " | from_yaml }}"
            facts[f"{prefix}/{name}"] = fact
        tasks.append(
            {
                "name": f"{prefix}s",
                "ansible.builtin.set_fact": rendered,
                "vars": {**TEMPLATE_VARS, **extra},
            }
        )
    for group in _same_scope(USE_SITES):  # fewer tasks: each costs a worker process
        scope: dict[str, Any] = {}
        rendered = {}
        for site in group:
            index = USE_SITES.index(site)
            scope |= {**site.vars, f"use_site_args_{index}": site.args}
            rendered[f"rendered_use_{index}"] = "{{ use_site_args_" + str(index) + " }}"
            facts[f"use/{site.id}"] = f"rendered_use_{index}"
        tasks.append(
            {
                "name": "use " + ", ".join(s.id for s in group),
                "ansible.builtin.set_fact": rendered,
                "vars": scope,
            }
        )
    everything = "{" + ", ".join(f"{k!r}: {v}" for k, v in facts.items()) + "}"
    tasks.append({"name": EMIT, "ansible.builtin.debug": {"msg": "{{ " + everything + " }}"}})
    return [{"name": "render", "hosts": "verifier", "gather_facts": False, "tasks": tasks}]


@dataclass
class Ansible:
    tmp: Path
    stacks: dict[str, EnvConfig] = field(repr=False)
    pending: dict[str, Pending] = field(default_factory=dict, repr=False)

    def _start(self, name: str, argv: list[str], cwd: Path, **env: str) -> None:
        self.pending[name] = Pending(
            argv, self.tmp / name, cwd, {**ansible_env(self.tmp), **env}
        ).start()

    def start(self) -> Ansible:
        (self.tmp / "templates").symlink_to(PLAYBOOKS / "templates")  # k8s/*.j2 lookups
        broken = self.tmp / "broken.yml"
        broken.write_text(
            json.dumps(
                [
                    {
                        "hosts": "verifier",
                        "tasks": [
                            {
                                "name": "two actions in one task",
                                "ansible.builtin.debug": {"msg": "x"},
                                "ansible.builtin.command": {"argv": ["true"]},
                            }
                        ],
                    }
                ]
            )
        )
        self._start(
            "syntax-broken",
            ansible_argv("ansible-playbook", "--syntax-check", "-i", inventory_path("dev"), broken),
            PLAYBOOKS,
        )
        for env in ENVIRONMENTS:
            self._start(
                f"syntax-{env}",
                ansible_argv(
                    "ansible-playbook", "--syntax-check", "-i", inventory_path(env), *PLAYBOOK_FILES
                ),
                PLAYBOOKS,
            )
            self._start(
                f"inventory-{env}",
                ansible_argv("ansible-inventory", "-i", inventory_path(env), "--list"),
                PLAYBOOKS,
            )
            self._render(env)
        return self

    def _render(self, env: str) -> None:
        hpa = self.stacks[env].scaling.hpa
        extra = {"min_replicas": hpa.min_replicas + 1, "max_replicas": hpa.max_replicas + 1}
        play = self.tmp / f"render-{env}.yml"
        play.write_text(json.dumps(render_play(renamed=env == "prod")))
        vars_file = self.tmp / f"render-{env}.vars.json"
        vars_file.write_text(json.dumps({**extra, "reason": REASON}))
        self._start(
            f"render-{env}",
            ansible_argv("ansible-playbook", "-i", inventory_path(env), play, f"-e@{vars_file}"),
            self.tmp,  # where templates/ links to playbooks/templates/
            ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default",
            ANSIBLE_CALLBACK_RESULT_FORMAT="json",
        )

    def run(self, name: str) -> Run:
        return self.pending[name].result()

    def hostvars(self, env: str) -> dict[str, Any]:
        run = self.run(f"inventory-{env}")
        assert run.returncode == 0, run.output
        listed = json.loads(run.stdout)
        assert listed["verifier"]["hosts"] == ["localhost"], listed
        hostvars: dict[str, Any] = listed["_meta"]["hostvars"]["localhost"]
        return hostvars

    def rendered(self, env: str) -> dict[str, Any]:
        """The JSON object the render playbook's last task printed (default callback, results
        as JSON): the templates and use sites as Ansible rendered them."""
        run = self.run(f"render-{env}")
        assert run.returncode == 0, run.output
        task = run.stdout.index(f"TASK [{EMIT}]")
        start = run.stdout.index("ok: [localhost] => ", task) + len("ok: [localhost] => ")
        result, _ = json.JSONDecoder().raw_decode(run.stdout, start)
        out: dict[str, Any] = result["msg"]
        return out

    def stop(self) -> None:
        for pending in self.pending.values():
            pending.stop()


@pytest.fixture(scope="module")
def stacks() -> dict[str, EnvConfig]:
    return load_all()


@pytest.fixture(scope="module")
def git() -> dict[str, dict[Key, GitObject]]:
    return {env: deploy_objects(env) for env in ENVIRONMENTS}


@pytest.fixture(scope="module")
def ansible(
    tmp_path_factory: pytest.TempPathFactory, stacks: dict[str, EnvConfig]
) -> Iterator[Ansible]:
    runs = Ansible(tmp_path_factory.mktemp("ansible"), stacks).start()
    yield runs
    runs.stop()


# --- what each template means, and where it applies --------------------------------------------


@dataclass(frozen=True)
class Ctx:
    env: str
    hv: dict[str, Any]
    stack: EnvConfig
    objects: dict[Key, GitObject]
    operation_time: str
    paused_reason: str | None = None
    """The exact reason a pause must record; None: any non-empty one."""

    @property
    def k8s_versions(self) -> tuple[str, ...]:
        cluster = self.stack.cluster
        return (cluster.k8s_version_oldest, cluster.k8s_version_newest)


def make_ctx(
    env: str,
    ansible: Ansible,
    stacks: dict[str, EnvConfig],
    git: dict[str, dict[Key, GitObject]],
    rendered: dict[str, Any],
    paused_reason: str | None = None,
) -> Ctx:
    return Ctx(
        env, ansible.hostvars(env), stacks[env], git[env], rendered["operation_time"], paused_reason
    )


def not_applicable(template: str, hv: dict[str, Any]) -> str | None:
    """Why ``template`` does not apply to the inventory's environment; None where it does."""
    name = stem(template)
    if name == "backup" and hv["registry_kind"] != "postgresql":
        return f"registry_kind is {hv['registry_kind']}: no CloudNativePG cluster to back up"
    if name == "rollout-abort" and hv["workload_kind"] != "Rollout":
        return f"workload_kind is {hv['workload_kind']}: no canary to abort"
    if name == "hpa-bounds" and not hv["hpa_enabled"]:
        return "hpa_enabled is false: no HorizontalPodAutoscaler"
    if name.startswith("application-") and not hv["gitops"]:
        return "gitops is false: delivered directly by Pulumi, no Argo CD in the cluster"
    return None


def not_applicable_problems(template: str, ctx: Ctx) -> list[str]:
    """The stack file and deploy/<env>/ agree with the inventory's reason."""
    kinds = {k[1] for k in ctx.objects}
    name = stem(template)
    expected = {
        "backup": (ctx.stack.database is None and ctx.hv["database_cluster"] == "", "Cluster"),
        "rollout-abort": (not ctx.stack.delivery.canary.enabled, "Rollout"),
        "hpa-bounds": (not ctx.stack.scaling.hpa.enabled, "HorizontalPodAutoscaler"),
    }
    if name in expected:
        agrees, kind = expected[name]
        problems = [] if agrees else [f"Pulumi.{ctx.env}.yaml disagrees with the inventory"]
        if kind in kinds:
            problems.append(f"deploy/{ctx.env}/ holds a {kind}: {template} applies")
        return problems
    if name.startswith("application-"):
        # Direct delivery installs the platform charts only; Argo CD comes with GitOps.
        problems = [] if not ctx.stack.delivery.gitops else [f"Pulumi.{ctx.env}.yaml: gitops"]
        if ARGOCD in PLATFORM_CHARTS:
            problems.append("direct delivery installs Argo CD: the Application templates apply")
        return problems
    return [f"{template}: no known reason not to apply it"]


def _without(obj: Obj, *names: str) -> Obj:
    return {k: v for k, v in obj.items() if k not in names}


def _annotations(obj: Obj) -> dict[str, Any]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def _normal(obj: Obj) -> Obj:
    """``obj`` without an empty annotations map (what deleting the last annotation leaves)."""
    out = copy.deepcopy(obj)
    if out.get("metadata", {}).get("annotations") == {}:
        del out["metadata"]["annotations"]
    return out


Facts = Callable[[Obj, GitObject, Obj, Ctx], list[str]]


def restart_facts(patch: Obj, target: GitObject, merged: Obj, ctx: Ctx) -> list[str]:
    """A rolling restart: ``spec.restartAt`` of a Rollout, the restartedAt annotation of a
    Deployment's pod template, at the operation's time (RFC 3339); nothing else."""
    when = ctx.operation_time
    problems = [] if is_rfc3339(when) else [f"operation_time {when!r} is not RFC 3339"]
    if patch.get("kind") != ctx.hv["workload_kind"]:
        problems.append(f"restarts a {patch.get('kind')}, not the {ctx.hv['workload_kind']}")
    if patch.get("kind") == "Rollout":
        expected: Obj = {"restartAt": when}
    else:
        expected = {"template": {"metadata": {"annotations": {RESTARTED_AT: when}}}}
    if patch.get("spec") != expected:
        problems.append(f"spec {patch.get('spec')!r}, expected {expected!r}")
    return problems


def abort_facts(patch: Obj, target: GitObject, merged: Obj, ctx: Ctx) -> list[str]:
    """An abort: ``status.abort: true`` and nothing else, no spec change for Argo CD to revert."""
    problems = []
    if "spec" in patch:
        problems.append(f"the patch changes spec: {patch['spec']!r}")
    if (merged.get("status") or {}).get("abort") is not True:
        problems.append(f"status.abort is not true after the patch: {merged.get('status')!r}")
    if _without(merged, "status") != _without(target.body, "status"):
        problems.append("the patch changes more than status")
    return problems


def hpa_facts(patch: Obj, target: GitObject, merged: Obj, ctx: Ctx) -> list[str]:
    spec = merged["spec"]
    hpa = ctx.stack.scaling.hpa
    expected = {"minReplicas": hpa.min_replicas + 1, "maxReplicas": hpa.max_replicas + 1}
    problems = [] if patch.get("spec") == expected else [f"spec {patch.get('spec')!r}: {expected}?"]
    ref = spec["scaleTargetRef"]
    if (ref["kind"], ref["name"]) != (ctx.hv["workload_kind"], ctx.hv["workload_name"]):
        problems.append(f"the HPA scales {ref}, not the workload")
    return problems


def externalsecret_facts(patch: Obj, target: GitObject, merged: Obj, ctx: Ctx) -> list[str]:
    problems = [] if "spec" not in patch else [f"the patch changes spec: {patch['spec']!r}"]
    if _annotations(patch) != {"force-sync": ctx.operation_time}:
        problems.append(f"annotations {_annotations(patch)!r}: expected force-sync only")
    if target.body["spec"]["target"]["name"] != ctx.hv["oauth2_external_secret"]:
        problems.append("the ExternalSecret does not write the oauth2 Secret")
    return problems


def _root_app_problems(target: GitObject, ctx: Ctx) -> list[str]:
    expected = DEPLOY / ctx.env / BOOTSTRAP / f"application-{ctx.hv['argocd_app']}.yaml"
    return [] if target.path == expected else [f"patches {target.relpath}, not the root app"]


def pause_facts(patch: Obj, target: GitObject, merged: Obj, ctx: Ctx) -> list[str]:
    """The automated sync removed (nothing else of the sync policy), who, when and why kept."""
    problems = _root_app_problems(target, ctx)
    if patch.get("spec") != {"syncPolicy": {"automated": None}}:
        problems.append(f"spec {patch.get('spec')!r}: expected only syncPolicy.automated: null")
    policy = target.body["spec"]["syncPolicy"]
    if "automated" not in policy:
        problems.append(f"{target.relpath} has no automated sync to pause")
    if merged["spec"]["syncPolicy"] != _without(policy, "automated"):
        problems.append(f"sync policy after the pause: {merged['spec']['syncPolicy']!r}")
    at, by, why = (_annotations(merged).get(a) for a in PAUSE_ANNOTATIONS)
    if at != ctx.operation_time or not is_rfc3339(at):
        problems.append(f"paused-at {at!r}, expected {ctx.operation_time!r} (RFC 3339)")
    if by != OPERATOR:
        problems.append(f"paused-by {by!r}, expected {OPERATOR!r} ($USER)")
    if not why or (ctx.paused_reason is not None and why != ctx.paused_reason):
        problems.append(f"paused-reason {why!r}, expected {ctx.paused_reason or 'a reason'!r}")
    return problems


def resume_facts(patch: Obj, target: GitObject, merged: Obj, ctx: Ctx) -> list[str]:
    """Exactly git's automated policy back, the pause record deleted: a paused Application
    resumed is the one git holds."""
    problems = _root_app_problems(target, ctx)
    desired = target.body["spec"]["syncPolicy"]["automated"]
    if patch.get("spec") != {"syncPolicy": {"automated": desired}}:
        problems.append(f"spec {patch.get('spec')!r}: expected git's automated {desired!r}")
    if _annotations(patch) != dict.fromkeys(PAUSE_ANNOTATIONS):
        problems.append(f"annotations {_annotations(patch)!r}: expected the pause record deleted")
    paused = merge_patch(
        target.body,
        {
            "metadata": {"annotations": dict.fromkeys(PAUSE_ANNOTATIONS, "x")},
            "spec": {"syncPolicy": {"automated": None}},
        },
    )
    if _normal(merge_patch(paused, patch)) != _normal(target.body):
        problems.append("a paused Application resumed is not the one git holds")
    return problems


def refresh_facts(patch: Obj, target: GitObject, merged: Obj, ctx: Ctx) -> list[str]:
    problems = _root_app_problems(target, ctx)
    if "spec" in patch:
        problems.append(f"the patch changes spec: {patch['spec']!r}")
    if _annotations(patch) != {REFRESH_ANNOTATION: "normal"}:
        problems.append(f"annotations {_annotations(patch)!r}: expected {REFRESH_ANNOTATION}")
    return problems


FACTS: dict[str, Facts] = {
    "restart": restart_facts,
    "rollout-abort": abort_facts,
    "hpa-bounds": hpa_facts,
    "externalsecret-refresh": externalsecret_facts,
    "application-pause": pause_facts,
    "application-resume": resume_facts,
    "application-refresh": refresh_facts,
}


def backup_problems(backup: Obj, ctx: Ctx) -> list[str]:
    """A new Backup: valid, of a Cluster git holds, with its ScheduledBackup's method, to the
    Cluster's object store, which is the stack's S3 backup destination."""
    problems = [f"schema: {p}" for p in schema_problems(backup, ctx.k8s_versions)]
    _, _, namespace, name = key(backup)
    if key(backup) in ctx.objects:
        problems.append(f"{describe(key(backup))} is in git: creating it would clash")
    if not DNS_SUBDOMAIN.match(name) or len(name) > 253:
        problems.append(f"name {name!r} is not a DNS subdomain")
    cluster_name = backup["spec"]["cluster"]["name"]
    cluster_key = ("postgresql.cnpg.io/v1", "Cluster", namespace, cluster_name)
    cluster = ctx.objects.get(cluster_key)
    if cluster is None:
        return [*problems, f"names {describe(cluster_key)}, not in deploy/{ctx.env}/"]
    scheduled = [
        o.body
        for k, o in ctx.objects.items()
        if k[1] == "ScheduledBackup" and k[2] == namespace
        and o.body["spec"]["cluster"]["name"] == cluster_name
    ]  # fmt: skip
    methods = [s["spec"].get("method", "barmanObjectStore") for s in scheduled]
    if methods != [backup["spec"].get("method", "barmanObjectStore")]:
        problems.append(f"method {backup['spec'].get('method')!r}, the ScheduledBackup's {methods}")
    store = cluster.body["spec"].get("backup", {}).get("barmanObjectStore", {})
    destination = store.get("destinationPath", "")
    database = ctx.stack.database
    if not (
        destination.startswith("s3://")
        and database is not None
        and destination == database.backup.destination == ctx.hv["backup_root"]
    ):
        problems.append(f"the Cluster stores backups in {destination!r}, not the stack's S3")
    return problems


def patch_problems(
    template: str, target_key: Key, patch: Obj, ctx: Ctx, *, status_only: bool = False
) -> list[str]:
    """``patch`` (a JSON merge patch) of the object ``target_key``: that object exists in git, the
    merged object is valid, and the patch means what ``template`` is for."""
    facts = FACTS.get(stem(template))
    if facts is None:
        return [f"{template}: no facts known for it: add them to FACTS"]
    target = ctx.objects.get(target_key)
    if target is None:
        return [f"patches {describe(target_key)}, not in deploy/{ctx.env}/"]
    if "metadata" in patch or "kind" in patch:  # a whole-object patch names its object
        named = key(patch)
        meta = _without(patch.get("metadata") or {}, "annotations")
        if named != target_key or set(meta) != {"name", "namespace"}:
            return [f"the patch's {named}, metadata {meta} do not name {target_key} alone"]
    merged = merge_patch(target.body, patch)
    problems = [f"schema: {p}" for p in schema_problems(merged, ctx.k8s_versions)]
    if status_only and _without(merged, "status") != _without(target.body, "status"):
        problems.append("a status subresource patch changes more than status")
    return problems + facts(patch, target, merged, ctx)


def sent_problems(template: str, sent: Obj, ctx: Ctx) -> list[str]:
    """A rendered template, as ``kubernetes.core.k8s`` would send it."""
    if stem(template) == "backup":
        return backup_problems(sent, ctx)
    return patch_problems(template, key(sent), sent, ctx)


KUBECTL_RESOURCES = {"rollout": ("argoproj.io/v1alpha1", "Rollout")}


def context_problems(context: object, ctx: Ctx) -> list[str]:
    expected = ctx.hv["cluster_context"]
    return [] if context == expected else [f"context {context!r}, not the inventory's {expected!r}"]


def use_site_problems(site: UseSite, args: Obj, ctx: Ctx) -> list[str]:
    """The module arguments of ``site``, templated: what the task would send, to which cluster."""
    if site.module == "kubernetes.core.k8s":
        problems = context_problems(args.get("context"), ctx)
        definition = args["definition"]
        if args.get("state") == "present" and stem(site.template) == "backup":
            return problems + backup_problems(definition, ctx)
        if args.get("state") != "patched":
            return [*problems, f"state {args.get('state')!r}: this test knows present, patched"]
        return problems + patch_problems(site.template, key(definition), definition, ctx)
    if site.module == "ansible.builtin.command" and args.get("argv", [None])[0] == "kubectl":
        flags = {a.split("=", 1)[0]: a.partition("=")[2] for a in args["argv"] if "=" in a}
        words = [a for a in args["argv"][1:] if not a.startswith("-")]
        problems = context_problems(flags.get("--context"), ctx)
        if words[:1] != ["patch"] or flags.get("--type") != "merge":
            return [*problems, f"not a kubectl merge patch: {args['argv']}"]
        api_version, kind = KUBECTL_RESOURCES[words[1]]
        target = (api_version, kind, flags.get("--namespace", ""), words[2])
        status_only = flags.get("--subresource") == "status"
        patch = json.loads(flags["--patch"])
        return problems + patch_problems(site.template, target, patch, ctx, status_only=status_only)
    return [f"{site.where}: this test does not know what {site.module} sends"]


def inventory_problems(
    env: str, hv: dict[str, Any], stack: EnvConfig, objects: dict[Key, GitObject]
) -> list[str]:
    """The inventory's names against Pulumi.<env>.yaml and the objects of deploy/<env>/."""
    expected = {
        "env_name": env,
        "restart_method": "kubernetes",
        "k8s_namespace": stack.namespace,
        "workload_kind": "Rollout" if stack.delivery.canary.enabled else "Deployment",
        "cluster_context": stack.cluster.kube_context or "",
        "hpa_enabled": stack.scaling.hpa.enabled,
        "registry_kind": stack.registry.kind,
        "gitops": stack.delivery.gitops,
        "database_namespace": stack.database.namespace if stack.database else "",
        "deploy_dir": str(DEPLOY / env),
    }
    problems = [
        f"{name}: {hv.get(name)!r}, Pulumi.{env}.yaml says {value!r}"
        for name, value in expected.items()
        if hv.get(name) != value
    ]
    workloads = sorted(
        (k[1], k[2])
        for k in objects
        if k[1] in ("Deployment", "Rollout") and k[3] == hv.get("workload_name")
    )
    if workloads != [(hv.get("workload_kind"), hv.get("k8s_namespace"))]:
        problems.append(f"deploy/{env}/ holds the workload as {workloads}")
    app = ("argoproj.io/v1alpha1", "Application", hv.get("argocd_namespace"), hv.get("argocd_app"))
    if app not in objects:
        problems.append(f"deploy/{env}/{BOOTSTRAP}/ has no root Application {app}")
    return problems


# --- 1. syntax and inventories -----------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_playbooks_pass_the_syntax_check(ansible: Ansible, env: str) -> None:
    run = ansible.run(f"syntax-{env}")
    assert run.returncode == 0, run.output
    assert re.findall(r"^playbook: (\S+)$", run.stdout, re.M) == PLAYBOOK_FILES, run.output


def test_syntax_check_refuses_a_broken_playbook(ansible: Ansible) -> None:
    run = ansible.run("syntax-broken")
    assert run.returncode != 0, run.output
    assert "conflicting action statements" in run.stdout + run.stderr, run.output


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_inventory_names_what_the_stack_file_and_git_say(
    ansible: Ansible, stacks: dict[str, EnvConfig], git: dict[str, dict[Key, GitObject]], env: str
) -> None:
    assert inventory_problems(env, ansible.hostvars(env), stacks[env], git[env]) == []


@pytest.mark.parametrize(
    ("name", "value"),
    [("env_name", "staging"), ("k8s_namespace", "default"), ("workload_kind", "Deployment")],
)
def test_inventory_check_catches_a_mismatch(
    ansible: Ansible,
    stacks: dict[str, EnvConfig],
    git: dict[str, dict[Key, GitObject]],
    name: str,
    value: str,
) -> None:
    hv = {**ansible.hostvars("prod"), name: value}
    problems = inventory_problems("prod", hv, stacks["prod"], git["prod"])
    assert any(p.startswith(f"{name}: ") for p in problems), problems


# --- 2, 3. every template, rendered with each cluster inventory --------------------------------


def test_every_template_is_sent_by_a_playbook() -> None:
    assert TEMPLATE_FILES, TEMPLATES
    assert sorted({s.template for s in USE_SITES}) == TEMPLATE_FILES
    assert set(FACTS) | {"backup"} == {stem(t) for t in TEMPLATE_FILES}


@pytest.mark.parametrize("template", TEMPLATE_FILES)
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_template_renders_a_valid_object_of_the_environment(
    ansible: Ansible,
    stacks: dict[str, EnvConfig],
    git: dict[str, dict[Key, GitObject]],
    env: str,
    template: str,
) -> None:
    rendered = ansible.rendered(env)
    ctx = make_ctx(env, ansible, stacks, git, rendered, paused_reason=REASON)
    reason = not_applicable(template, ctx.hv)
    if reason is not None:
        assert not_applicable_problems(template, ctx) == [], reason
        return
    assert sent_problems(template, rendered[f"template/{template}"], ctx) == []


def _use_site_params() -> list[Any]:
    params = []
    for env in ENVIRONMENTS:
        for site in USE_SITES:
            marks = []
            if site.id == "flush-cache/restart":
                marks.append(pytest.mark.orr("4.6-06"))
            if site.id == "backup/backup" and env != "dev":
                marks.append(pytest.mark.orr("4.4-06"))
            params.append(pytest.param(env, site, id=f"{env}-{site.id}", marks=marks))
    return params


@pytest.mark.parametrize(("env", "site"), _use_site_params())
def test_playbook_sends_a_valid_object_of_the_environment(
    ansible: Ansible,
    stacks: dict[str, EnvConfig],
    git: dict[str, dict[Key, GitObject]],
    env: str,
    site: UseSite,
) -> None:
    rendered = ansible.rendered(env)
    ctx = make_ctx(env, ansible, stacks, git, rendered)
    reason = not_applicable(site.template, ctx.hv)
    if reason is not None:
        assert not_applicable_problems(site.template, ctx) == [], reason
        return
    problems = use_site_problems(site, rendered[f"use/{site.id}"], ctx)
    assert problems == [], site.where


@pytest.mark.parametrize(
    "playbook",
    sorted({s.where.split(" > ")[0] for s in USE_SITES if s.template.startswith("application-")}),
)
def test_playbooks_that_drive_argo_cd_check_gitops(playbook: str) -> None:
    assert any(re.search(r"\bgitops\b", c) for c in conditions(playbook)), playbook


# --- 4. each check can fail --------------------------------------------------------------------


def test_merge_patch_is_rfc_7386() -> None:
    cases = [  # RFC 7386, appendix A (a selection)
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ]
    for target, patch, expected in cases:
        before = copy.deepcopy(target)
        assert merge_patch(target, patch) == expected, (target, patch)
        assert target == before


SCHEMA_BREAKS: list[tuple[str, str, Callable[[Obj], Any], str]] = [
    # CRDs (pinned schemas)
    ("prod", "restart.yml.j2", lambda p: p["spec"].update(restartAt=20260101), "spec.restartAt"),
    ("prod", "rollout-abort.yml.j2", lambda p: p["status"].update(abort="yes"), "status.abort"),
    ("prod", "backup.yml.j2", lambda p: p["spec"].update(method="snapshot"), "spec.method"),
    (
        "staging",
        "externalsecret-refresh.yml.j2",
        lambda p: p.update(spec={"refreshInterval": 3600}),
        "spec.refreshInterval",
    ),
    (
        "staging",
        "application-pause.yml.j2",
        lambda p: p["spec"]["syncPolicy"].update(automated="off"),
        "spec.syncPolicy.automated",
    ),
    # core kinds (kubernetes_validate)
    ("staging", "hpa-bounds.yml.j2", lambda p: p["spec"].update(minReplicas="3"), "minReplicas"),
    (
        "dev",
        "restart.yml.j2",
        lambda p: p["spec"]["template"]["metadata"]["annotations"].update({RESTARTED_AT: 1}),
        "spec.template.metadata.annotations",
    ),
]


@pytest.mark.parametrize(
    ("env", "template", "edit", "where"),
    SCHEMA_BREAKS,
    ids=[f"{b[0]}-{stem(b[1])}" for b in SCHEMA_BREAKS],
)
def test_schema_refuses_a_bad_object(
    ansible: Ansible,
    stacks: dict[str, EnvConfig],
    git: dict[str, dict[Key, GitObject]],
    env: str,
    template: str,
    edit: Callable[[Obj], Any],
    where: str,
) -> None:
    problems = problems_of_an_edit(ansible, stacks, git, env, template, edit)
    schema = [p for p in problems if p.startswith("schema: ")]
    assert any(where in p for p in schema), schema


def problems_of_an_edit(
    ansible: Ansible,
    stacks: dict[str, EnvConfig],
    git: dict[str, dict[Key, GitObject]],
    env: str,
    template: str,
    edit: Callable[[Obj], Any],
) -> list[str]:
    """What the checks find in ``template`` as rendered for ``env`` once ``edit`` changed it."""
    rendered = ansible.rendered(env)
    ctx = make_ctx(env, ansible, stacks, git, rendered, paused_reason=REASON)
    sent = copy.deepcopy(rendered[f"template/{template}"])
    edit(sent)
    return sent_problems(template, sent, ctx)


FACT_BREAKS: list[tuple[str, str, Callable[[Obj], Any], str]] = [
    ("prod", "restart.yml.j2", lambda p: p["spec"].update(restartAt="yesterday"), "spec"),
    (
        "staging",
        "restart.yml.j2",
        lambda p: p["spec"]["template"]["metadata"].update(annotations={"x": "1"}),
        "spec",
    ),
    ("prod", "rollout-abort.yml.j2", lambda p: p.update(spec={"paused": True}), "changes spec"),
    ("prod", "hpa-bounds.yml.j2", lambda p: p["spec"].update(minReplicas=1), "spec"),
    (
        "prod",
        "externalsecret-refresh.yml.j2",
        lambda p: p["metadata"].update(annotations={}),
        "force-sync",
    ),
    ("prod", "application-pause.yml.j2", lambda p: p["spec"]["syncPolicy"].clear(), "automated"),
    (
        "prod",
        "application-pause.yml.j2",
        lambda p: p["metadata"]["annotations"].pop(PAUSE_ANNOTATIONS[2]),
        "paused-reason",
    ),
    (
        "staging",
        "application-resume.yml.j2",
        lambda p: p["spec"]["syncPolicy"]["automated"].update(selfHeal=False),
        "git's automated",
    ),
    (
        "staging",
        "application-resume.yml.j2",
        lambda p: p["metadata"].pop("annotations"),
        "pause record",
    ),
    ("prod", "application-refresh.yml.j2", lambda p: p["metadata"].pop("annotations"), "refresh"),
]


@pytest.mark.parametrize(
    ("env", "template", "edit", "expected"),
    FACT_BREAKS,
    ids=[f"{b[0]}-{stem(b[1])}-{i}" for i, b in enumerate(FACT_BREAKS)],
)
def test_facts_catch_a_patch_that_means_something_else(
    ansible: Ansible,
    stacks: dict[str, EnvConfig],
    git: dict[str, dict[Key, GitObject]],
    env: str,
    template: str,
    edit: Callable[[Obj], Any],
    expected: str,
) -> None:
    problems = problems_of_an_edit(ansible, stacks, git, env, template, edit)
    assert any(expected in p and not p.startswith("schema: ") for p in problems), problems


def test_existence_check_catches_a_renamed_object(
    ansible: Ansible, stacks: dict[str, EnvConfig], git: dict[str, dict[Key, GitObject]]
) -> None:
    """Rendered with the inventory's object names changed (RENAMED, task vars over the
    inventory's), every template naming one of them patches or references nothing git holds;
    the others still pass."""
    rendered = ansible.rendered("prod")
    ctx = make_ctx("prod", ansible, stacks, git, rendered, paused_reason=REASON)
    renamed = {"backup", "restart", "rollout-abort", "hpa-bounds", "externalsecret-refresh"}
    for template in TEMPLATE_FILES:
        problems = sent_problems(template, rendered[f"renamed/{template}"], ctx)
        if stem(template) in renamed:
            assert any("not in deploy/prod/" in p for p in problems), (template, problems)
        else:
            assert problems == [], template


def test_not_applicable_check_catches_a_disagreeing_inventory(
    ansible: Ansible, stacks: dict[str, EnvConfig], git: dict[str, dict[Key, GitObject]]
) -> None:
    rendered = ansible.rendered("prod")
    ctx = make_ctx("prod", ansible, stacks, git, rendered)
    # prod's inventory, claiming what is not so: prod's stack file and git say otherwise
    for template, change in (
        ("rollout-abort.yml.j2", {"workload_kind": "Deployment"}),
        ("hpa-bounds.yml.j2", {"hpa_enabled": False}),
        ("backup.yml.j2", {"registry_kind": "sqlite"}),
        ("application-pause.yml.j2", {"gitops": False}),
    ):
        hv = {**ctx.hv, **change}
        assert not_applicable(template, hv) is not None, template
        fake = Ctx("prod", hv, ctx.stack, ctx.objects, ctx.operation_time)
        assert not_applicable_problems(template, fake), template


def test_use_site_check_catches_the_wrong_cluster(
    ansible: Ansible, stacks: dict[str, EnvConfig], git: dict[str, dict[Key, GitObject]]
) -> None:
    rendered = ansible.rendered("staging")
    ctx = make_ctx("staging", ansible, stacks, git, rendered)
    site = next(s for s in USE_SITES if s.id == "flush-cache/restart")
    args = {**rendered[f"use/{site.id}"], "context": "cap-verifier-prod"}
    assert use_site_problems(site, args, ctx) == [
        "context 'cap-verifier-prod', not the inventory's 'cap-verifier-staging'"
    ]


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"status": {"abort": True}}, []),  # what `kubectl argo rollouts abort` sends
        ({"abort": True}, ["schema: <root>", "more than status", "status.abort is not true"]),
        ({"status": {"abort": True}, "spec": {"paused": True}}, ["changes spec", "more than"]),
    ],
)
def test_status_patch_check(
    ansible: Ansible,
    stacks: dict[str, EnvConfig],
    git: dict[str, dict[Key, GitObject]],
    patch: Obj,
    expected: list[str],
) -> None:
    """The kubectl status-subresource patch of rollback.yml, with other patches in its place:
    the one Argo Rollouts' own abort sends passes, the others do not."""
    rendered = ansible.rendered("prod")
    ctx = make_ctx("prod", ansible, stacks, git, rendered)
    site = next(s for s in USE_SITES if s.id == "rollback/rollout-abort")
    sent = rendered[f"use/{site.id}"]
    argv = [a for a in sent["argv"] if not a.startswith("--patch=")]
    problems = use_site_problems(site, {"argv": [*argv, f"--patch={json.dumps(patch)}"]}, ctx)
    for part in expected:
        assert any(part in p for p in problems), (part, problems)
    assert bool(problems) == bool(expected), problems
