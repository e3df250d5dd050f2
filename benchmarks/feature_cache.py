"""What the fbank feature cache buys: time per epoch of the w2v-BERT FSDD recipe with and without
it (``data.feature_cache``), the same config, seed and data, one after the other in one process.

Without the cache the collator runs ``SeamlessM4TFeatureExtractor`` on every batch of every epoch
(and of every dev evaluation); with it each clip's features are computed once, before the first
step, and batches only pad them.

    python benchmarks/feature_cache.py --data data/fsdd --epochs 3

Results: ``benchmarks/results/feature_cache.json``. Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.append(str(ROOT / "benchmarks"))  # machine.py (after installed packages)
from machine import machine_info  # noqa: E402

from wavtune.config import load_config  # noqa: E402
from wavtune.train.trainer import train  # noqa: E402

RECIPE = ROOT / "examples" / "fsdd.yaml"


def one_run(data: Path, out: Path, epochs: int, cached: bool, preset: str) -> dict[str, Any]:
    """Train the recipe for ``epochs`` epochs; its wall time, loop time and data share."""
    config = load_config(str(RECIPE), [
        f"data.train={data / 'train.jsonl'}", "data.test=", f"train.output_dir={out}",
        f"train.num_epochs={epochs}", f"data.feature_cache={str(cached).lower()}",
        f"model.preset={preset}"])
    start = time.perf_counter()
    result = train(config, progress=False)
    wall = time.perf_counter() - start
    metrics = json.loads((out / "metrics.json").read_text())
    shares = [r["data_share"] for r in map(json.loads, (out / "log.jsonl").open())
              if "data_share" in r]
    builds = [json.loads((f / "meta.json").read_text())["build_s"]
              for f in (out / "audio-cache").glob("features-*")]
    loop = float(metrics["train_runtime_s"])
    return {"feature_cache": cached, "epochs": epochs, "steps": result.steps,
            "wall_s": round(wall, 1), "loop_s": loop, "s_per_epoch": round(loop / epochs, 2),
            "data_share_mean": round(sum(shares) / max(1, len(shares)), 4),
            "feature_cache_build_s": round(sum(builds), 2),
            "dev_wer": None if result.eval is None else round(result.eval.wer, 4)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "fsdd",
                        help="folder with FSDD's train.jsonl (wavtune prepare fsdd)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" /
                        "feature_cache.json")
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for cached in (False, True):
            runs.append(one_run(args.data, Path(tmp) / f"run-{cached}", args.epochs, cached,
                                args.preset))
            print(json.dumps(runs[-1]), flush=True)
    off, on = runs
    results = {"machine": machine_info(), "recipe": str(RECIPE.relative_to(ROOT)),
               "preset": args.preset, "runs": runs,
               "epoch_speedup": round(off["s_per_epoch"] / on["s_per_epoch"], 3)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(f"s/epoch {off['s_per_epoch']} without the feature cache, {on['s_per_epoch']} with "
          f"it ({results['epoch_speedup']}x); written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
