"""The command line: which rows to run, in what order, and the report at the end."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import benchmarks
from benchmarks.common import REPO, Row, one_line, say
from benchmarks.isolation import isolated
from benchmarks.report import machine_info, print_table, write_results

GROUPS: dict[str, list[str]] = {
    "replay": ["replay-seed", "replay-seed-nbconvert", "replay-vs-nbconvert"],
    "examples": ["replay-examples-vs-nbconvert"],
    "roundtrip": ["roundtrip-10", "roundtrip-1000"],
    "snapshot": ["snapshot-1e8", "describe-1e8", "describe-1e8-vs-repr"],
    "app": ["app-first-frame", "app-first-frame-over-bare", "app-memory", "app-panes-latency", "app-key-latency"],
    "backward": ["backward-log-mlp", "backward-log-chain", "backward-log-loop", "backward-log-loop-tiny"],
    "node-grads": ["node-grads-chain", "node-grads-mlp"],
    "nan-check": ["nan-check-mlp", "nan-check-vs-anomaly"],
    "interrupt": ["interrupt-python", "interrupt-torch"],
    "fold": ["fold-expand-1e5", "fold-expand-key", "fold-expand-first-key"],
    "graph": ["graph-view-1e4", "graph-text-1e4"],
    "inspector": ["app-model-inspector"],
    "model-100": ["app-model-100-layers", "report-wire-100-layers"],
    "long-session": ["app-memory-1000-cells", "app-scroll-1000-cells"],
    "big-output": ["output-10mb-first-line"],
    "check": ["check-vs-nbval", "check-jobs-2"],
    "remote": ["server-roundtrip", "replay-seed-server"],
    "sandbox": ["replay-seed-sandbox"],
}
ROW_NAMES = [name for names in GROUPS.values() for name in names]

Task = tuple[list[str], Callable[[], list[Row]]]  # the rows a task measures, and the task


def chosen(only: str | None, group: str) -> bool:
    return only is None or only == group or only in GROUPS[group]


def tasks_for(only: str | None, rounds: int) -> list[Task]:
    """What to run for --only (None: everything), imported only when chosen."""
    tasks: list[Task] = []
    if chosen(only, "replay"):
        from benchmarks.replay import bench_replay

        with_nb = only != "replay-seed"
        tasks.append((GROUPS["replay"] if with_nb else ["replay-seed"], lambda: bench_replay(rounds, with_nb)))
    if chosen(only, "examples"):
        from benchmarks.replay import bench_examples

        tasks.append((GROUPS["examples"], lambda: bench_examples(min(rounds, 2))))
    if chosen(only, "roundtrip"):
        from benchmarks.kernel import bench_roundtrips

        sizes = [10, 1000] if only in (None, "roundtrip") else [int(only.rsplit("-", 1)[1])]
        tasks.append(([f"roundtrip-{n}" for n in sizes], lambda: bench_roundtrips(sizes, 6 * rounds)))
    if chosen(only, "snapshot"):
        from benchmarks.probe import bench_snapshot

        tasks.append((GROUPS["snapshot"], lambda: bench_snapshot(4 * rounds)))
    if chosen(only, "backward"):
        from benchmarks.probe import bench_backward_log

        tasks.append((GROUPS["backward"], lambda: bench_backward_log(rounds)))
    if chosen(only, "node-grads"):
        from benchmarks.node_grads import bench_node_grads

        tasks.append((GROUPS["node-grads"], lambda: bench_node_grads(rounds)))
    if chosen(only, "nan-check"):
        from benchmarks.nan_check import bench_nan_check

        tasks.append((GROUPS["nan-check"], lambda: bench_nan_check(rounds)))
    if chosen(only, "interrupt"):
        from benchmarks.kernel import bench_interrupts

        tasks.append((GROUPS["interrupt"], lambda: bench_interrupts(2 * rounds)))
    if chosen(only, "fold"):
        from benchmarks.fold_expand import bench_fold

        tasks.append((GROUPS["fold"], lambda: bench_fold(rounds)))
    if chosen(only, "inspector"):
        from benchmarks.model_inspector import bench_model_inspector

        tasks.append((GROUPS["inspector"], lambda: bench_model_inspector(4 * rounds)))
    if chosen(only, "model-100"):
        from benchmarks.model_inspector import bench_model_100_layers

        tasks.append((GROUPS["model-100"], lambda: bench_model_100_layers(2 * rounds)))
    if chosen(only, "long-session"):
        from benchmarks.session_scale import bench_long_session

        tasks.append((GROUPS["long-session"], lambda: bench_long_session(min(rounds, 3))))
    if chosen(only, "big-output"):
        from benchmarks.session_scale import bench_big_output

        tasks.append((GROUPS["big-output"], lambda: bench_big_output(rounds)))
    if chosen(only, "check"):
        from benchmarks.lesson_check import bench_lesson_check

        tasks.append((GROUPS["check"], lambda: bench_lesson_check(min(rounds, 3))))
    if chosen(only, "remote"):
        from benchmarks.remote import bench_remote

        tasks.append((GROUPS["remote"], lambda: bench_remote(rounds, 6 * rounds)))
    if chosen(only, "sandbox"):
        from benchmarks.sandbox import bench_sandbox

        tasks.append((GROUPS["sandbox"], lambda: bench_sandbox(rounds)))
    if chosen(only, "graph"):
        from benchmarks.graph_scale import bench_graph_scale

        tasks.append((GROUPS["graph"], lambda: bench_graph_scale(4 * rounds)))
    if chosen(only, "app"):
        from benchmarks.app_latency import KEY_PRESSES_MAX, bench_keys, bench_panes
        from benchmarks.app_start import bench_first_frame, bench_memory

        app_rows: dict[str, Callable[[], list[Row]]] = {
            "app-first-frame": lambda: bench_first_frame(rounds),
            "app-memory": lambda: bench_memory(rounds),
            "app-panes-latency": lambda: bench_panes(4 * rounds),
            "app-key-latency": lambda: bench_keys(min(4 * rounds, KEY_PRESSES_MAX)),
        }
        for name, bench in app_rows.items():
            names = [name, "app-first-frame-over-bare"] if name == "app-first-frame" else [name]
            if only in (None, "app", *names):
                tasks.append((names, bench))
    return tasks


def run_tasks(tasks: list[Task]) -> tuple[list[Row], bool, bool]:
    """Every task in private state and config dirs of its own; (rows, failed, interrupted)."""
    rows: list[Row] = []
    failed = False
    for names, task in tasks:
        try:
            with isolated(names[0]):
                rows.extend(task())
        except KeyboardInterrupt:
            say("interrupted")
            return rows, failed, True
        except Exception as exc:  # one clear line per failed group, then the next group
            failed = True
            message = one_line(exc)
            say(f"{names[0]} failed: {message}")
            rows.extend(Row(name, None, "", "", None, None, "", None, error=message) for name in names)
    return rows, failed, False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=(benchmarks.__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=None, help="paired replay rounds (default 5; --quick: 2)")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and samples")
    parser.add_argument("--only", choices=[*ROW_NAMES, *GROUPS], metavar="NAME", help=f"one row: {', '.join(ROW_NAMES)}")
    parser.add_argument("--out", type=Path, default=REPO / "bench-results.json", help="JSON output (default: bench-results.json)")
    args = parser.parse_args(argv)
    rounds = args.rounds if args.rounds is not None else (2 if args.quick else 5)
    if rounds < 1:
        parser.error("--rounds must be at least 1")

    tasks = tasks_for(args.only, rounds)
    if any(name.startswith("app") for names, _ in tasks for name in names):
        # As an installed package is: byte-compiled (PYTHONDONTWRITEBYTECODE would otherwise
        # make every launch compile gradrepl's modules again, which users do not pay).
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "gradrepl")], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    info = machine_info()
    say(f"{info['nproc']} cpus, python {info['python']}, torch {info['torch']}; rounds {rounds}")
    started = time.perf_counter()
    rows, failed, interrupted = run_tasks(tasks)
    info["bench_seconds"] = round(time.perf_counter() - started, 1)
    info["rounds"] = rounds

    print()
    print(f"gradrepl bench: {info['nproc']} cpus ({info['cpu']}), python {info['python']}, torch {info['torch']}, "
          f"rounds {rounds}, {info['bench_seconds']:.0f} s")
    print_table(rows)
    if interrupted:
        print(f"\ninterrupted: {args.out} not written")
        return 130
    try:
        write_results(args.out, info, rows)
        print(f"\nwrote {args.out}")
    except OSError as exc:
        say(f"cannot write {args.out}: {one_line(exc)}")
        failed = True
    return 1 if failed else 0
