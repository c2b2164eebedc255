#!/usr/bin/env python3
"""Run mb and its peers on the shared benchmark workloads in one session and compare.

    python3 bench/compare.py                              # default plan, 5 runs each
    python3 bench/compare.py --plan wide1k:abcde --repeat 3
    python3 bench/compare.py --plan wide10k:abcde --tools mb,make,ninja,doit

The harness itself (workload generator, timer, output checker) lives outside
the project, in `../shared/bench` next to the repository root; this driver only
installs the peers, generates the workspaces, runs `run.py` for every tool on
every workload of the plan back to back (the machine is shared and noisy, so
only numbers taken together are compared) and prints the medians with the
ratios mb/make, mb/ninja and mb/doit as a Markdown table.

Why a driver and not a test: timings are not assertions (STYLE: no timing
asserts), and a full run takes minutes. It is never collected by pytest.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HARNESS = REPO.parent / "shared" / "bench"
BENCH_VENV = Path("/tmp/benchvenv")
#: mb as users get it: a regular (not editable) install of this checkout. An editable
#: install adds a meta-path finder that imports pathlib into every run (~30 ms).
MB_VENV = Path("/tmp/mb-bench-venv")
DEFAULT_PLAN = "wide1k:abcde,chain:abcd,media:abcd"
DEFAULT_TOOLS = "mb,make,ninja,doit"
PEERS_IN_VENV = {"snakemake", "doit", "scons"}
RATIO_PEERS = ("make", "ninja", "doit")

# One line per scenario from run.py, e.g.
# make       wide1k   a clean       1.075 s  (min 1.070, max 1.080)  cpu   1.927 s  peak   21.4 MiB  rewrote 1000
_RESULT = re.compile(
    r"^(?P<tool>\S+)\s+(?P<workload>\S+)\s+(?P<scenario>[a-e]) (?P<name>\S+)\s+"
    r"(?P<median>[\d.]+) s\s+\(min (?P<min>[\d.]+), max (?P<max>[\d.]+)\)\s+"
    r"cpu\s+(?P<cpu>[\d.]+) s\s+peak\s+(?P<peak>[\d.]+) MiB\s+rewrote (?P<rewrote>\d+)")
_PROBLEM = re.compile(
    r"^(?P<tool>\S+)\s+(?P<workload>\S+)\s+(?P<scenario>[a-e]) (?P<name>\S+)\s+"
    r"(?P<kind>ERROR|NOTE): (?P<text>.*)$")


@dataclass
class Result:
    """One scenario of one tool on one workload, as run.py reported it."""

    tool: str
    workload: str
    scenario: str
    name: str
    median: float
    min: float
    max: float
    cpu: float
    peak: float
    rewrote: int
    problems: list[str] = field(default_factory=list)


# --- setup ----------------------------------------------------------------------

def _sh(argv: list[str], **kwargs: object) -> None:
    print("+ " + " ".join(argv), flush=True)
    subprocess.run(argv, check=True, **kwargs)  # type: ignore[arg-type]


def install_peers(tools: list[str]) -> None:
    """make and ninja from apt (one `apt-get update` first), the rest into BENCH_VENV."""
    missing_apt = [pkg for tool, pkg in (("make", "make"), ("ninja", "ninja-build"))
                   if tool in tools and shutil.which(tool) is None]
    if missing_apt:
        _sh(["apt-get", "update"])
        _sh(["apt-get", "install", "-y", *missing_apt])
    wanted = [t for t in tools if t in PEERS_IN_VENV]
    if wanted and not all((BENCH_VENV / "bin" / t).exists() for t in wanted):
        if not (BENCH_VENV / "bin" / "python").exists():
            _sh([sys.executable, "-m", "venv", str(BENCH_VENV)])
        _sh([str(BENCH_VENV / "bin" / "pip"), "install", "-q", "-r",
             str(HARNESS / "requirements.txt")])


def install_mb() -> None:
    """(Re)install this checkout into MB_VENV, so the numbers are those of the current code."""
    if not (MB_VENV / "bin" / "python").exists():
        _sh([sys.executable, "-m", "venv", str(MB_VENV)])
    _sh([str(MB_VENV / "bin" / "pip"), "install", "-q", "--force-reinstall", "--no-deps",
         str(REPO)])
    _sh([str(MB_VENV / "bin" / "pip"), "install", "-q", str(REPO)])  # dependencies, once


def generate(root: Path, tools: list[str], workloads: list[str]) -> None:
    _sh([sys.executable, str(HARNESS / "gen.py"), "--root", str(root),
         "--tools", ",".join(tools), "--workloads", ",".join(workloads)])


# --- running ----------------------------------------------------------------------

def run_one(tool: str, workload: str, scenarios: str, repeat: int, root: Path,
            log: list[str]) -> list[Result]:
    """Run run.py for one tool and workload, echoing and parsing its lines."""
    venv = MB_VENV if tool == "mb" else BENCH_VENV
    argv = [sys.executable, str(HARNESS / "run.py"), tool, workload, "--root", str(root),
            "--scenarios", scenarios, "--repeat", str(repeat), "--venv", str(venv)]
    print("+ " + " ".join(argv), flush=True)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    results: dict[str, Result] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip("\n")
        print(line, flush=True)
        log.append(line)
        if m := _RESULT.match(line):
            results[m["scenario"]] = Result(
                tool, workload, m["scenario"], m["name"], float(m["median"]), float(m["min"]),
                float(m["max"]), float(m["cpu"]), float(m["peak"]), int(m["rewrote"]))
        elif (m := _PROBLEM.match(line)) and m["scenario"] in results:
            results[m["scenario"]].problems.append(f"{m['kind']}: {m['text']}")
        elif m:  # an ERROR before any timing (a failed build)
            results[m["scenario"]] = Result(tool, workload, m["scenario"], m["name"],
                                            float("nan"), 0, 0, 0, 0, 0,
                                            [f"{m['kind']}: {m['text']}"])
    proc.wait()
    return list(results.values())


def machine_load() -> str:
    """Load average and a fixed CPU task's time: how busy the shared machine was.

    sum(range(10**7)) takes about 0.2 s on an idle core of these machines; a
    run where it takes seconds measured the neighbours as much as the tools.
    """
    import os
    import time

    started = time.perf_counter()
    sum(range(10**7))
    spent = time.perf_counter() - started
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"load average {load}; sum(range(10**7)) {spent:.2f} s"


# --- reporting ----------------------------------------------------------------------

def table(results: list[Result], tools: list[str]) -> str:
    """Markdown table: one row per (workload, scenario); medians; ratios of mb to peers."""
    by_key = {(r.workload, r.scenario, r.tool): r for r in results}
    rows = sorted({(r.workload, r.scenario, r.name) for r in results},
                  key=lambda k: (_order(k[0], results), k[1]))
    peers = [p for p in RATIO_PEERS if p in tools]
    head = (["workload", "scenario"] + [f"{t} s" for t in tools]
            + [f"mb/{p}" for p in peers] + [f"cpu mb/{p}" for p in peers]
            + ["mb cpu s", "mb peak MiB", "mb rewrote"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for workload, scenario, name in rows:
        cells = [workload, f"{scenario} {name}"]
        for t in tools:
            r = by_key.get((workload, scenario, t))
            if r is None:
                cells.append("")
            elif r.median != r.median:  # nan: the build failed before any timing
                cells.append("FAILED")
            else:
                cells.append(f"{r.median:.3f}" + (" !" if r.problems else ""))
        mb = by_key.get((workload, scenario, "mb"))
        for attr in ("median", "cpu"):
            for p in peers:
                cells.append(_ratio(mb, by_key.get((workload, scenario, p)), attr))
        cells += ([f"{mb.cpu:.3f}", f"{mb.peak:.1f}", str(mb.rewrote)] if mb else ["", "", ""])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ratio(mb: Result | None, peer: Result | None, attr: str) -> str:
    """mb's value over the peer's; CPU ratios matter when the shared machine is loaded."""
    if mb is None or peer is None or not getattr(peer, attr) > 0 or not getattr(mb, attr) > 0:
        return ""  # a failed run (nan or 0) has no ratio
    return f"{getattr(mb, attr) / getattr(peer, attr):.2f}"


def _order(workload: str, results: list[Result]) -> int:
    return [r.workload for r in results].index(workload)


def problems(results: list[Result]) -> list[str]:
    return [f"{r.tool} {r.workload} {r.scenario} {p}" for r in results for p in r.problems]


def parse_plan(plan: str) -> list[tuple[str, str]]:
    """'wide1k:abcde,chain:abcd' -> [('wide1k', 'abcde'), ('chain', 'abcd')]."""
    out = []
    for item in plan.split(","):
        workload, _, scenarios = item.partition(":")
        out.append((workload, scenarios or "abcd"))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", default=DEFAULT_PLAN,
                        help="workload:scenarios,... (default %(default)s)")
    parser.add_argument("--tools", default=DEFAULT_TOOLS,
                        help="comma-separated; mb first (default %(default)s)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per scenario")
    parser.add_argument("--root", type=Path, default=Path("/tmp/bench"))
    parser.add_argument("--no-install", action="store_true", help="skip installing peers")
    parser.add_argument("--no-generate", action="store_true",
                        help="reuse the workspaces under --root")
    parser.add_argument("--json", type=Path, help="also write the parsed results here")
    args = parser.parse_args()
    if not HARNESS.is_dir():
        print(f"benchmark harness not found at {HARNESS}", file=sys.stderr)
        return 2
    tools = args.tools.split(",")
    plan = parse_plan(args.plan)
    if not args.no_install:
        install_peers(tools)
        if "mb" in tools:
            install_mb()
    if not args.no_generate:
        generate(args.root, tools, [w for w, _ in plan])
    results: list[Result] = []
    log: list[str] = []
    loads = [f"before: {machine_load()}"]
    print(loads[0], flush=True)
    for workload, scenarios in plan:
        for tool in tools:
            results += run_one(tool, workload, scenarios, args.repeat, args.root, log)
        loads.append(f"after {workload}: {machine_load()}")
        print(loads[-1], flush=True)
    print()
    print(table(results, tools))
    print("\n" + "\n".join(loads))
    found = problems(results)
    if found:
        print("\nproblems (! in the table):")
        print("\n".join(found))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    return 1 if any("ERROR" in p for p in found) else 0


if __name__ == "__main__":
    sys.exit(main())
