"""Launch benchmark: Pathwise against a pylti1p3 tool with library defaults.

Both are served the same way (gunicorn, gthread, 4 threads, same worker count)
on loopback, behind the same test LMS and JWKS server, and driven by the same
launch driver the end-to-end tests use (tests/support/http_launch.py): one
launch = OIDC login + signing the id_token + launch POST + first page, and it
counts only when the page greets the person by name. See benchmarks/README.md.

    .venv/bin/python benchmarks/launch.py [--launches 150] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform as pyplatform
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "benchmarks"
RESULTS_DIR = BENCH_DIR / "results"
# Run as a script, `tests` (the shared launch driver) is not on the path yet.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import serialization  # noqa: E402

from tests.support.http_launch import (  # noqa: E402
    HttpLauncher,
    LaunchResult,
    ServerProcess,
    free_port,
    tool_env,
)
from tests.support.platform import JwksServer, TestPlatform, canvas_flavor, rsa_key  # noqa: E402

THREADS = 4   # what `lti-tool serve` gives each gunicorn worker
# No control socket in ~/.gunicorn: two gunicorns (tool and baseline) run at once.
GUNICORN_CMD_ARGS = "--no-control-socket"
STEPS = ("login", "sign", "launch", "page")


@dataclass
class Target:
    name: str
    base_url: str
    platform: TestPlatform
    server: ServerProcess
    login_path: str
    launch_path: str

    def launcher(self) -> HttpLauncher:
        return HttpLauncher(self.base_url, self.platform, login_path=self.login_path,
                            launch_path=self.launch_path)


@dataclass
class Phase:
    """Outcome of a batch of launches."""

    launches: int = 0
    failures: int = 0
    errors: list[str] = field(default_factory=list)
    totals: list[float] = field(default_factory=list)
    steps: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STEPS})
    elapsed: float = 0.0
    server_cpu: float | None = None
    driver_cpu: float = 0.0
    machine_busy: float | None = None
    requests: int = 0   # HTTP requests one launch makes to the server

    def record(self, result: LaunchResult) -> None:
        self.launches += 1
        self.requests = result.requests
        self.totals.append(result.total)
        for step in STEPS:
            self.steps[step].append(result.timings.get(step, 0.0))

    def fail(self, exc: BaseException) -> None:
        self.failures += 1
        if len(self.errors) < 5:   # the first few are enough to diagnose
            self.errors.append(f"{type(exc).__name__}: {str(exc)[:400]}")

    def summary(self) -> dict:
        out: dict = {"launches": self.launches, "requests_per_launch": self.requests,
                     "failures": self.failures,
                     "errors": self.errors, "elapsed_s": round(self.elapsed, 3)}
        if self.totals:
            out["median_ms"] = round(1000 * statistics.median(self.totals), 2)
            out["p95_ms"] = round(1000 * percentile(self.totals, 95), 2)
            out["step_median_ms"] = {s: round(1000 * statistics.median(v), 2)
                                     for s, v in self.steps.items()}
        if self.elapsed:
            out["launches_per_s"] = round(self.launches / self.elapsed, 2)
        if self.server_cpu is not None and self.launches:
            out["server_cpu_ms_per_launch"] = round(1000 * self.server_cpu / self.launches, 2)
        if self.launches:
            # The driver (signing, HTTP client, JWKS server) shares the CPUs.
            out["driver_cpu_ms_per_launch"] = round(1000 * self.driver_cpu / self.launches, 2)
        if self.server_cpu is not None and self.elapsed:
            out["server_cpu_cores_busy"] = round(self.server_cpu / self.elapsed, 2)
            out["driver_cpu_cores_busy"] = round(self.driver_cpu / self.elapsed, 2)
        if self.machine_busy is not None and self.elapsed:
            out["machine_cpu_cores_busy"] = round(self.machine_busy / self.elapsed, 2)
        return out


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: a value that occurred)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


# -- server CPU, read from /proc (Linux): how much work one launch costs ------------
def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def server_cpu_seconds(server: ServerProcess) -> float | None:
    """user+system CPU of the gunicorn master and its workers so far."""
    if not Path("/proc/self/stat").exists():
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in [server.process.pid, *_children(server.process.pid)]:
        try:
            fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])   # utime, stime
    return total / ticks


def machine_busy_seconds() -> float | None:
    """CPU seconds the whole machine spent not idle (all cores), from /proc/stat:
    tells whether a run was CPU-bound, whoever used the CPU (a database too)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)   # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


# -- starting the two servers -----------------------------------------------------------
def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LTI_TOOL_", "BASELINE_", "GUNICORN_"))}
    env["GUNICORN_CMD_ARGS"] = GUNICORN_CMD_ARGS
    return env


def _run(args: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def _wait_or_stop(server: ServerProcess, url: str) -> None:
    try:
        server.wait_ready(url)
    except BaseException:
        server.stop()   # not yet in the caller's list of servers to stop
        raise


def start_tool(root: Path, jwks: JwksServer, workers: int,
               database_url: str | None = None) -> Target:
    """As an operator would: init, platform add, serve."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = _clean_env()
    env.update((k, v) for k, v in tool_env(root, base_url, database_url).items()
               if k.startswith("LTI_TOOL_"))
    # Every simulated launch comes from one loopback address: the per-IP
    # limits protect a real deployment, not this measurement.
    env.update(LTI_TOOL_RATE_LIMIT_LOGIN="off", LTI_TOOL_RATE_LIMIT_LAUNCH="off")
    cli = [sys.executable, "-m", "lti_tool.cli"]
    _run([*cli, "init"], env)
    platform = TestPlatform(canvas_flavor(), jwks, base_url)
    reg = platform.registration()
    added = json.loads(_run([*cli, "platform", "add", "--issuer", reg["issuer"],
                             "--client-id", reg["client_id"],
                             "--auth-login-url", reg["auth_login_url"],
                             "--auth-token-url", reg["auth_token_url"],
                             "--jwks-url", reg["jwks_url"],
                             "--deployment-id", reg["deployment_ids"][0]], env))
    assert added["issuer"] == reg["issuer"], added
    server = ServerProcess([*cli, "serve", "--host", "127.0.0.1", "--port", str(port),
                            "--workers", str(workers)], env=env, log_path=root / "tool.log")
    _wait_or_stop(server, base_url + "/healthz")
    return Target("tool", base_url, platform, server, "/lti/login", "/lti/launch")


def start_baseline(root: Path, jwks: JwksServer, workers: int) -> Target:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    platform = TestPlatform(canvas_flavor(), jwks, base_url)
    key_path = root / "baseline_key.pem"
    key_path.write_bytes(rsa_key().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    reg = platform.registration()
    env = _clean_env()
    env.update(BASELINE_ISSUER=reg["issuer"], BASELINE_CLIENT_ID=reg["client_id"],
               BASELINE_AUTH_LOGIN_URL=reg["auth_login_url"],
               BASELINE_AUTH_TOKEN_URL=reg["auth_token_url"],
               BASELINE_JWKS_URL=reg["jwks_url"],
               BASELINE_DEPLOYMENT_ID=reg["deployment_ids"][0],
               BASELINE_PRIVATE_KEY=str(key_path),
               BASELINE_SECRET_KEY=secrets.token_urlsafe(32))
    # The same gunicorn invocation `lti-tool serve` makes, pointed at the baseline.
    server = ServerProcess(
        [sys.executable, "-m", "gunicorn", "--workers", str(workers),
         "--worker-class", "gthread", "--threads", str(THREADS),
         "--bind", f"127.0.0.1:{port}", "--access-logfile", "-",
         "--chdir", str(BENCH_DIR), "baseline_tool:app"],
        env=env, log_path=root / "baseline.log")
    _wait_or_stop(server, base_url + "/jwks")
    return Target("baseline", base_url, platform, server, "/login", "/launch")


# -- measuring ----------------------------------------------------------------------------
def role_for(index: int) -> str:
    # Mostly students, some teachers: both landing pages are exercised.
    return "teacher" if index % 5 == 0 else "student"


def run_sequential(target: Target, count: int) -> Phase:
    phase = Phase()
    launcher = target.launcher()
    started = time.perf_counter()
    cpu = server_cpu_seconds(target.server)
    driver_cpu = time.process_time()
    busy = machine_busy_seconds()
    try:
        for i in range(count):
            try:
                phase.record(launcher.launch(role=role_for(i)))
            except Exception as exc:   # counted and reported, the run goes on
                phase.fail(exc)
    finally:
        launcher.close()
    phase.elapsed = time.perf_counter() - started
    phase.driver_cpu = time.process_time() - driver_cpu
    _finish_cpu(phase, target, cpu, busy)
    return phase


def _finish_cpu(phase: Phase, target: Target, server_cpu: float | None,
                machine_busy: float | None) -> None:
    if server_cpu is not None:
        phase.server_cpu = (server_cpu_seconds(target.server) or 0.0) - server_cpu
    if machine_busy is not None:
        phase.machine_busy = (machine_busy_seconds() or 0.0) - machine_busy


def run_concurrent(target: Target, clients: int, count: int, max_seconds: float) -> Phase:
    """`clients` threads, each with its own session, share `count` launches
    (or stop at `max_seconds`); throughput = successful launches / wall time."""
    phase = Phase()
    lock = threading.Lock()
    next_index = [0]
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def take() -> int | None:
        with lock:
            if next_index[0] >= count or time.perf_counter() > deadline[0]:
                return None
            next_index[0] += 1
            return next_index[0]

    def client() -> None:
        launcher = target.launcher()
        try:
            start.wait()
            while (index := take()) is not None:
                try:
                    result = launcher.launch(role=role_for(index))
                except Exception as exc:
                    with lock:
                        phase.fail(exc)
                    continue
                with lock:
                    phase.record(result)
        finally:
            launcher.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    cpu = server_cpu_seconds(target.server)
    driver_cpu = time.process_time()
    busy = machine_busy_seconds()
    started = time.perf_counter()
    deadline[0] = started + max_seconds
    start.wait()
    for thread in threads:
        thread.join()
    phase.elapsed = time.perf_counter() - started
    phase.driver_cpu = time.process_time() - driver_cpu
    _finish_cpu(phase, target, cpu, busy)
    return phase


def measure(target: Target, args: argparse.Namespace, say: Callable[[str], None]) -> dict:
    say(f"[{target.name}] warm-up: {args.warmup} launches, {args.concurrency} clients")
    warmup = run_concurrent(target, args.concurrency, args.warmup, args.max_seconds)
    say(f"[{target.name}] sequential: {args.launches} launches")
    sequential = run_sequential(target, args.launches)
    say(f"[{target.name}] throughput: {args.concurrency} clients, up to "
        f"{args.throughput_launches} launches or {args.max_seconds:.0f} s")
    concurrent = run_concurrent(target, args.concurrency, args.throughput_launches,
                                args.max_seconds)
    return {"base_url": target.base_url, "warmup": warmup.summary(),
            "sequential": sequential.summary(), "concurrent": concurrent.summary(),
            "failures": warmup.failures + sequential.failures + concurrent.failures}


# -- reporting ------------------------------------------------------------------------------
def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def report(results: dict, config: dict) -> tuple[str, dict]:
    tool, base = results["tool"], results["baseline"]
    rows = [
        ("sequential median (ms)", ("sequential", "median_ms"), "lower is better"),
        ("sequential p95 (ms)", ("sequential", "p95_ms"), "lower is better"),
        ("throughput (launches/s)", ("concurrent", "launches_per_s"), "higher is better"),
        ("concurrent median (ms)", ("concurrent", "median_ms"), "lower is better"),
        ("concurrent p95 (ms)", ("concurrent", "p95_ms"), "lower is better"),
        ("server CPU per launch (ms)", ("concurrent", "server_cpu_ms_per_launch"),
         "lower is better"),
        ("server CPU cores busy", ("concurrent", "server_cpu_cores_busy"), "during throughput"),
        ("driver CPU per launch (ms)", ("concurrent", "driver_cpu_ms_per_launch"),
         "the load generator"),
        ("driver CPU cores busy", ("concurrent", "driver_cpu_cores_busy"), "during throughput"),
        ("machine CPU cores busy", ("concurrent", "machine_cpu_cores_busy"),
         f"of {os.cpu_count()}, during throughput"),
    ]
    ratios = {}
    lines = [
        f"Launch benchmark: {config['cpus']} CPUs, {config['workers']} gunicorn workers x "
        f"{THREADS} threads (gthread) each; {config['launches']} sequential launches, "
        f"{config['concurrency']} concurrent clients; tool database: {config['database']}; "
        f"LMS JWKS latency: {config['platform_latency_ms']:g} ms",
        "",
        f"{'':28}{'tool':>10}{'baseline':>10}{'tool/baseline':>15}",
    ]
    for label, (phase, key), note in rows:
        a, b = tool[phase].get(key), base[phase].get(key)
        r = ratio(a, b)
        ratios[f"{phase}_{key}"] = r
        lines.append(f"{label:28}{_fmt(a):>10}{_fmt(b):>10}{_fmt(r, 'x'):>15}  {note}")
    lines.append(f"{'failed launches':28}{tool['failures']:>10}{base['failures']:>10}")
    lines.append(f"{'HTTP requests per launch':28}"
                 f"{tool['sequential']['requests_per_launch']:>10}"
                 f"{base['sequential']['requests_per_launch']:>10}")
    lines += ["", "median per step, sequential (ms):"]
    for name, result in (("tool", tool), ("baseline", base)):
        steps = result["sequential"].get("step_median_ms", {})
        lines.append(f"  {name:9}" + "  ".join(f"{s} {v:.1f}" for s, v in steps.items()))
    throughput = ratios.get("concurrent_launches_per_s")
    met = throughput is not None and throughput >= 2.0
    lines += ["", f"target: tool throughput >= 2.00x baseline -> "
                  f"{'met' if met else 'NOT met'} ({_fmt(throughput, 'x')})"]
    for name, result in (("tool", tool), ("baseline", base)):
        for phase in ("warmup", "sequential", "concurrent"):
            for error in result[phase]["errors"]:
                lines.append(f"  {name} {phase} failure: {error}")
    return "\n".join(lines), {**ratios, "throughput_target_met": met}


def _fmt(value: float | None, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.2f}{suffix}"


def _database_kind(url: str | None) -> str:
    if not url:
        return "sqlite (embedded default)"
    return url.split(":", 1)[0].split("+", 1)[0]   # never the credentials


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--launches", type=int, default=150,
                        help="sequential launches for the latency figures (default 150)")
    parser.add_argument("--concurrency", type=int, default=8,
                        help="concurrent clients for the throughput figure (default 8)")
    parser.add_argument("--workers", type=int, default=None,
                        help="gunicorn workers for both servers (default: what "
                             "`lti-tool serve` picks, 2 per CPU core, at most 8)")
    parser.add_argument("--throughput-launches", type=int, default=400,
                        help="launches in the throughput run (default 400)")
    parser.add_argument("--max-seconds", type=float, default=20.0,
                        help="time limit of the throughput run (default 20)")
    parser.add_argument("--warmup", type=int, default=24,
                        help="warm-up launches per server, not measured (default 24)")
    parser.add_argument("--tool-database-url", default=None,
                        help="an empty database for the tool, e.g. PostgreSQL (default: "
                             "a fresh SQLite file, the embedded mode)")
    parser.add_argument("--platform-latency-ms", type=float, default=0.0,
                        help="delay of the LMS's JWKS endpoint, modelling an LMS reached over "
                             "the internet rather than on loopback (default 0)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "launch.json",
                        help="where to write the JSON results")
    args = parser.parse_args(argv)
    workers = args.workers or min(8, 2 * (os.cpu_count() or 1))
    config = {"cpus": os.cpu_count(), "workers": workers, "threads": THREADS,
              "launches": args.launches, "concurrency": args.concurrency,
              "throughput_launches": args.throughput_launches,
              "max_seconds": args.max_seconds, "warmup": args.warmup,
              "python": pyplatform.python_version(), "machine": pyplatform.machine(),
              "database": _database_kind(args.tool_database_url),
              "platform_latency_ms": args.platform_latency_ms}

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    # The in-process JWKS server would log every request of the baseline to stderr.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    results: dict = {}
    targets: list[Target] = []
    jwks = JwksServer()
    jwks.latency = args.platform_latency_ms / 1000
    with tempfile.TemporaryDirectory(prefix="pathwise-bench-") as tmp:
        try:
            root = Path(tmp)
            (root / "tool").mkdir()
            (root / "baseline").mkdir()
            targets.append(start_tool(root / "tool", jwks, workers, args.tool_database_url))
            targets.append(start_baseline(root / "baseline", jwks, workers))
            for target in targets:
                results[target.name] = measure(target, args, say)
        finally:
            for target in targets:
                target.server.stop()
            jwks.close()

    table, ratios = report(results, config)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.parent.resolve() == RESULTS_DIR:
        # Results are machine-specific: keep them out of git.
        (RESULTS_DIR / ".gitignore").write_text("*\n")
    args.out.write_text(json.dumps({"config": config, "results": results, "ratios": ratios},
                                   indent=2) + "\n")
    print(f"\nresults written to {args.out}")
    failures = sum(r["failures"] for r in results.values())
    if failures:
        print(f"{failures} launch(es) failed: the figures above are not valid", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
