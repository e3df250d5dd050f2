"""``train.compile`` (issue 20): the waveform FSDD recipe
(``examples/fsdd-wav2vec2.yaml``) for a fixed number of steps with and without
``torch.compile``, each side in a fresh process, measured in one run.

Per side: wall time of ``wavtune train`` (set-up and compilation included), the first logging
window's wall time (where compilation lands), the steady throughput (median audio-seconds per
second over the second half of the logging windows), and from those the number of steps after
which compiling would have paid for itself.

    python benchmarks/compile.py --data FSDD_MANIFESTS            # ~8 min on 2 idle cores
    python benchmarks/compile.py --data FSDD_MANIFESTS --quick    # smoke (figures meaningless)

Results: ``benchmarks/results/compile.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # measure this checkout's wavtune, not an installed one
sys.path.append(str(Path(__file__).resolve().parent))  # benchmarks/machine.py (after packages)
from machine import machine_info  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "compile.json"
RECIPE = ROOT / "examples" / "fsdd-wav2vec2.yaml"
FSDD_DATA = ROOT / "data" / "fsdd"


def side(spec: dict[str, Any]) -> dict[str, Any]:
    """One ``wavtune train`` of the recipe (no dev or test scoring); its timings."""
    from wavtune.config import load_config
    from wavtune.train.trainer import train

    overrides = [f"data.train={spec['train']}", "data.test=", "data.eval_from_train=0",
                 "data.allow_outside_paths=true", f"train.output_dir={spec['out']}",
                 f"train.max_steps={spec['steps']}", f"train.compile={spec['compile']}",
                 f"train.logging_steps={spec['window']}", "train.save_total_limit=1"]
    start = time.perf_counter()
    train(load_config(RECIPE, overrides), progress=False)
    wall = time.perf_counter() - start
    rows = [json.loads(line) for line in
            (Path(spec["out"]) / "log.jsonl").read_text(encoding="utf-8").splitlines()]
    rates = [r["audio_s_per_s"] for r in rows if "audio_s_per_s" in r]
    steady = statistics.median(rates[len(rates) // 2:])
    return {"wall_s": round(wall, 1), "steps": spec["steps"],
            "first_window_audio_s_per_s": round(rates[0], 2),
            "steady_audio_s_per_s": round(steady, 2), "windows": len(rates)}


def child(spec: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"compile={spec['compile']} failed:\n{proc.stderr[-3000:]}")
    answer: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return answer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=FSDD_DATA,
                        help="folder with FSDD train.jsonl")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--window", type=int, default=25, help="steps per logging window")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(side(json.loads(args.child))))
        return 0
    if args.quick:
        args.steps, args.window = 6, 2
    results: dict[str, Any] = {"command": " ".join(["python", *sys.argv]),
                               "recipe": str(RECIPE.relative_to(ROOT)), "machine": machine_info()}
    with tempfile.TemporaryDirectory(prefix="wavtune-compile-") as tmp:
        for compiled in (False, True):
            name = "compiled" if compiled else "eager"
            results[name] = child({"train": str(args.data / "train.jsonl"), "steps": args.steps,
                                   "window": args.window, "compile": str(compiled).lower(),
                                   "out": str(Path(tmp) / name)})
            print(json.dumps({name: results[name]}), flush=True)
    eager, compiled_side = results["eager"], results["compiled"]
    results["wall_ratio"] = round(eager["wall_s"] / compiled_side["wall_s"], 3)
    results["steady_speedup"] = round(
        compiled_side["steady_audio_s_per_s"] / eager["steady_audio_s_per_s"], 3)
    # steps of this length after which compiling pays: its one-off cost over the steady saving
    eager_step = eager["wall_s"] / args.steps
    compiled_step = eager_step / results["steady_speedup"]
    one_off = compiled_side["wall_s"] - args.steps * compiled_step
    pays = compiled_step < eager_step  # else neither figure means anything: it never pays
    results["compile_one_off_s"] = round(one_off, 1) if pays else None
    results["break_even_steps"] = round(one_off / (eager_step - compiled_step)) if pays else None
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"eager/compiled wall {results['wall_ratio']}x, steady {results['steady_speedup']}x, "
          f"break-even after {results['break_even_steps']} steps; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
