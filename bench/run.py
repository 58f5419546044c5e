"""``make bench``: the verifier over TLS on this machine, measured with wrk in one run.

Same server, same run: GET /healthz is the baseline, POST /verify (valid token, stored
policy) the measured path; the ratio verify/healthz is what we hold ourselves to. Also the
p99 of /verify at a paced 10 requests/s, compile p95 cold and warm, and a worker's RSS.
Writes the figures into bench/README.md.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cap_ops.devkit.jwks_server import JWKSServer
from cap_ops.devkit.pki import make_pki
from cap_ops.devkit.service import ServiceProcess, service_config
from cap_ops.devkit.tokens import AUDIENCE, ISSUER, SigningKey, jwks_document, mint

ROOT = Path(__file__).resolve().parents[1]

POLICY_YAML = (ROOT / "tools" / "cap_ops" / "localenv" / "lksg_v1.policy.yml").read_text()
VERIFY_BODY = {
    "policy_id": "lksg.v1",
    "context": {
        "supplier_hashes": ["0x" + "11" * 32, "0x" + "22" * 32],
        "ubo_hashes": ["0x" + "33" * 32],
    },
}
TARGETS = {
    "ratio": 0.35,
    "p99_ms_at_10rps": 25.0,
    "compile_p95_warm_ms": 50.0,
    "compile_p95_cold_ms": 200.0,
    "rss_mib": 200.0,
}


@dataclass
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    non_2xx: int


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"unreadable wrk latency {text!r}")
    number, unit = match.groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(url: str, seconds: int, connections: int, script: Path | None = None) -> WrkResult:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if script is not None:
        command[1:1] = ["-s", str(script)]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    if os.environ.get("BENCH_DEBUG"):
        print(out)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return WrkResult(rps, p50, p99, int(non_2xx.group(1)) if non_2xx else 0)


def wrk_script(directory: Path, token: str) -> Path:
    body = json.dumps(VERIFY_BODY)
    script = directory / "verify.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
    )
    return script


def percentile(samples: list[float], pct: float) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[int(pct) - 1]


def paced_p99(service: ServiceProcess, token: str, rate: float, seconds: float) -> float:
    """p99 latency of /verify when requests arrive at ``rate`` per second."""
    latencies: list[float] = []
    interval = 1.0 / rate
    with service.client(headers={"Authorization": f"Bearer {token}"}) as client:
        client.post("/verify", json=VERIFY_BODY)  # warm the connection
        next_at = time.perf_counter()
        end = next_at + seconds
        while next_at < end:
            time.sleep(max(0.0, next_at - time.perf_counter()))
            started = time.perf_counter()
            response = client.post("/verify", json=VERIFY_BODY)
            latencies.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            next_at += interval
    return percentile(latencies, 99)


def compile_p95(service: ServiceProcess, token: str, count: int) -> tuple[float, float]:
    """(cold, warm) p95 in ms: cold = a policy never seen before, warm = one already stored."""
    cold: list[float] = []
    warm: list[float] = []
    with service.client(headers={"Authorization": f"Bearer {token}"}) as client:
        for i in range(count):
            text = POLICY_YAML.replace("id: lksg.v1", f"id: bench.cold.{i}")
            body = {"policy_yaml": base64.b64encode(text.encode()).decode(), "persist": True}
            started = time.perf_counter()
            client.post("/policy/v2/compile", json=body).raise_for_status()
            cold.append((time.perf_counter() - started) * 1000)
        body = {"policy_yaml": base64.b64encode(POLICY_YAML.encode()).decode(), "persist": True}
        for _ in range(count):
            started = time.perf_counter()
            client.post("/policy/v2/compile", json=body).raise_for_status()
            warm.append((time.perf_counter() - started) * 1000)
    return percentile(cold, 95), percentile(warm, 95)


def worker_rss_mib(service: ServiceProcess) -> float:
    assert service.process is not None
    children = Path(f"/proc/{service.process.pid}/task/{service.process.pid}/children")
    pids = children.read_text().split()
    rss = []
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss.append(int(line.split()[1]) / 1024)
    return max(rss)


def _row(label: str, key: str, unit: str, value: float) -> str:
    """A table row: the figure, its target and whether it is met (ratio: higher is better)."""
    higher_is_better = key == "ratio"
    target = TARGETS[key]
    met = value >= target if higher_is_better else value <= target
    sign = "≥" if higher_is_better else "≤"
    return f"| {label} | {value:.2f}{unit} | {sign} {target}{unit} | {'met' if met else 'MISSED'} |"


def write_readme(
    figures: dict[str, float],
    wrk_healthz: WrkResult,
    wrk_verify: WrkResult,
    args: argparse.Namespace,
) -> None:
    lines = [
        "# Benchmarks",
        "",
        "Measured by `make bench` (`bench/run.py`): the verifier under granian + uvloop, TLS 1.3,",
        f"{args.workers} worker(s), SQLite registry, on this machine (2 cores shared with wrk).",
        "Figures are compared within one run, never across machines.",
        "",
        "```",
        f"make bench   # = .venv/bin/python bench/run.py --seconds {args.seconds} "
        f"--connections {args.connections} --workers {args.workers}",
        "```",
        "",
        f"Last run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        "| measure | value | target | |",
        "|---|---|---|---|",
        f"| GET /healthz (baseline) | {wrk_healthz.requests_per_second:,.0f} req/s, "
        f"p50 {wrk_healthz.p50_ms:.2f} ms, p99 {wrk_healthz.p99_ms:.2f} ms | | |",
        f"| POST /verify | {wrk_verify.requests_per_second:,.0f} req/s, "
        f"p50 {wrk_verify.p50_ms:.2f} ms, p99 {wrk_verify.p99_ms:.2f} ms | | |",
        *(
            _row(label, key, unit, figures[key])
            for label, key, unit in (
                ("ratio verify / healthz", "ratio", ""),
                ("/verify p99 at 10 req/s", "p99_ms_at_10rps", " ms"),
                ("compile p95, warm (stored)", "compile_p95_warm_ms", " ms"),
                ("compile p95, cold (new policy)", "compile_p95_cold_ms", " ms"),
                ("worker RSS after the load", "rss_mib", " MiB"),
            )
        ),
        "",
        "Non-2xx responses under wrk: "
        f"healthz {wrk_healthz.non_2xx}, verify {wrk_verify.non_2xx} (must be 0).",
        "",
    ]
    (ROOT / "bench" / "README.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk is missing; install the Debian package: apt-get install wrk")
    work = Path(tempfile.mkdtemp(prefix="cap-bench-"))
    pki = make_pki(work / "pki")
    key = SigningKey()
    jwks = JWKSServer(pki.server.cert, pki.server.key, jwks_document(key))
    jwks.start()
    config = service_config(
        work,
        cert=pki.server.cert,
        key=pki.server.key,
        ca_cert=pki.ca_cert,
        jwks_url=jwks.url,
        issuer=ISSUER,
        audience=AUDIENCE,
        server={"workers": args.workers},
        logging={"level": "WARNING"},
    )
    service = ServiceProcess(config, work, pki.ca_cert)
    try:
        service.migrate()
        service.start()
        token = mint(key, lifetime=3600)
        with service.client(headers={"Authorization": f"Bearer {token}"}) as client:
            body = {"policy_yaml": base64.b64encode(POLICY_YAML.encode()).decode(), "persist": True}
            client.post("/policy/v2/compile", json=body).raise_for_status()
        healthz = wrk(f"{service.url}/healthz", args.seconds, args.connections)
        verify = wrk(
            f"{service.url}/verify", args.seconds, args.connections, wrk_script(work, token)
        )
        figures = {
            "ratio": verify.requests_per_second / healthz.requests_per_second,
            "p99_ms_at_10rps": paced_p99(service, token, rate=10, seconds=20),
            "rss_mib": worker_rss_mib(service),
        }
        figures["compile_p95_cold_ms"], figures["compile_p95_warm_ms"] = compile_p95(
            service, token, 100
        )
        write_readme(figures, healthz, verify, args)
        print((ROOT / "bench" / "README.md").read_text())
        if healthz.non_2xx or verify.non_2xx:
            sys.exit("bench: non-2xx responses under load")
    finally:
        service.stop()
        jwks.stop()
        shutil.rmtree(work, ignore_errors=True)
        os.environ.pop("CAP_VERIFIER_CONFIG", None)


if __name__ == "__main__":
    main()
