"""The README's main job, timed as a new user runs it: ``wavtune demo`` in a fresh process.

    python benchmarks/demo_time.py [--out DIR] [--quick] [--json benchmarks/results/demo.json]

Records the wall time of the whole command (synthesis, data checks, training, evaluation and
the transcripts), the child process's peak RSS, the test WER and published step from the run's
``metrics.json``, the demo's own closing lines and the machine (CPU model and vector extensions:
issue 20's target is an AVX2-only 2-core EPYC, and AVX-512 machines run it faster). Run it on
idle cores: other jobs only ever add time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent))  # benchmarks/ (after packages)
from machine import machine_info  # noqa: E402


def closing_lines(lines: list[str]) -> list[str]:
    """The demo's report: from ``held-out test clips:`` to the ``test WER`` line."""
    start = next((i for i, line in enumerate(lines) if line.startswith("held-out test clips")),
                 len(lines))
    end = next((i + 1 for i, line in enumerate(lines) if line.startswith("test WER")), len(lines))
    return lines[start:end]


def run_demo(out: Path, quick: bool, timeout_s: float = 3600.0) -> dict[str, Any]:
    """Run ``wavtune demo OUT`` in a child process; its timings, metrics and closing lines."""
    command = [sys.executable, "-m", "wavtune.cli", "demo", str(out), *(["--quick"] if quick
                                                                         else [])]
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=stdout, stderr=stderr, text=True)
        killer = threading.Timer(timeout_s, child.kill)  # a hung demo fails, it does not hang
        killer.start()
        try:  # wait4: this child's own peak RSS (RUSAGE_CHILDREN is the largest child's ever)
            _, status, usage = os.wait4(child.pid, 0)
        finally:
            killer.cancel()
        wall_s = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        stderr.seek(0)
        said, errors = stdout.read(), stderr.read()
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({child.returncode}):\n{errors[-3000:]}")
    metrics = json.loads((out / "run" / "metrics.json").read_text(encoding="utf-8"))
    closing = closing_lines(said.splitlines())
    return {
        "command": "wavtune demo OUT" + (" --quick" if quick else ""),
        "wall_s": round(wall_s, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # kB on Linux
        "train_runtime_s": metrics.get("train_runtime_s"),
        "test_wer": metrics["test"]["wer"],
        "test_cer": metrics["test"]["cer"],
        "published_step": metrics["published_step"],
        "last_step": metrics["last_step"],
        "best_dev_wer": metrics["best_metric"],
        "closing_lines": closing,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="", help="demo folder (default: a temporary one)")
    parser.add_argument("--quick", action="store_true", help="the reduced demo the tests run")
    parser.add_argument("--json", default="", help="write the results here")
    parser.add_argument("--timeout-s", type=float, default=3600.0,
                        help="kill the demo after this many seconds (then fail)")
    args = parser.parse_args(argv)
    machine = machine_info()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp) / "demo"
        result = {"machine": machine, **run_demo(out, args.quick, args.timeout_s)}
    print("\n".join(result["closing_lines"]))
    print(f"wall {result['wall_s']} s ({result['wall_s'] / 60:.1f} min), peak RSS "
          f"{result['peak_rss_mb']} MB, test WER {result['test_wer']:.4f} on {machine['cpu']} "
          f"({', '.join(machine['vector_extensions'])}; {machine['cpus']} cores)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
