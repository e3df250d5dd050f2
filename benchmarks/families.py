"""Every encoder family from random init on FSDD, with one recipe and one epoch budget (issue 18).

Each family (``model.arch``) is trained by ``wavtune train`` with the raw-waveform recipe
``examples/fsdd-wav2vec2.yaml`` as it is (``small`` preset, 8 kHz, conv strides 5*4*4*2 = 20 ms
frames, tri-stage LR, SpecAugment, batches of 16, dev = a tenth of train) except
``train.num_epochs`` (``--epochs``, the same for all). The fbank family (``wav2vec2-bert``) cannot
take that recipe's conv geometry or 8 kHz input, so it trains ``examples/fsdd.yaml`` (its own
``small`` preset, 16 kHz fbank, no adapter, ``mask_time_prob`` 0.1) at the same epochs. One run
per family, each in its own process, one after the other; the published checkpoint (best dev WER)
is scored on the official test split.

    python benchmarks/families.py --data /work/runs/fsdd-data --epochs 8 --families hubert,wavlm
    python benchmarks/families.py --record-run wav2vec2-bert=RUN   # a finished run's row as it is

Rows accumulate in ``benchmarks/results/families.json`` (a family run again replaces its row), so
families can be run one at a time (``--families``); the table of every row is printed at the end.
A family whose run fails gets a row with the error instead of figures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # measure this checkout's wavtune, not an installed one
sys.path.append(str(ROOT / "benchmarks"))  # machine.py (after installed packages)
from machine import machine_info  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "families.json"
WAVEFORM_RECIPE = ROOT / "examples" / "fsdd-wav2vec2.yaml"
FEATURES_RECIPE = ROOT / "examples" / "fsdd.yaml"
FSDD_DATA = ROOT / "data" / "fsdd"  # wavtune prepare fsdd ... data/fsdd; --data


def family_names() -> list[str]:
    from wavtune.model.families import FAMILIES

    return list(FAMILIES)


def recipe_of(arch: str) -> Path:
    """The recipe a family trains with: the waveform one, or the fbank one for fbank families."""
    from wavtune.model.families import family

    return FEATURES_RECIPE if family(arch).input_kind == "features" else WAVEFORM_RECIPE


def row_of_run(arch: str, run: Path, recipe: str, wall_s: float | None = None) -> dict[str, Any]:
    """A results row from a finished run's ``metrics.json`` and ``wavtune.yaml``."""
    import yaml

    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    config = yaml.safe_load((run / "wavtune.yaml").read_text(encoding="utf-8"))
    test, dev = metrics.get("test") or {}, metrics.get("eval") or {}
    return {"family": arch, "recipe": recipe, "preset": config["model"].get("preset"),
            "params": metrics["params"]["total"], "epochs": config["train"]["num_epochs"],
            "learning_rate": config["train"]["learning_rate"],
            "test_wer": round(test["wer"], 4), "test_cer": round(test["cer"], 4),
            "dev_wer": round(dev["wer"], 4) if dev else None,
            "train_s": metrics["train_runtime_s"],
            "wall_s": None if wall_s is None else round(wall_s, 1),
            "published_step": metrics["published_step"], "last_step": metrics["last_step"],
            "run": str(run)}


def train_child(spec: dict[str, Any]) -> dict[str, Any]:
    """``wavtune train`` of one family with its recipe, in this process; its row."""
    from wavtune.config import load_config
    from wavtune.train.trainer import train

    arch, recipe = spec["arch"], recipe_of(spec["arch"])
    overrides = [f"model.arch={arch}", f"data.train={spec['train']}", f"data.test={spec['test']}",
                 f"train.output_dir={spec['out']}", f"train.num_epochs={spec['epochs']}",
                 *spec["extra"]]
    start = time.perf_counter()
    train(load_config(recipe, overrides), progress=False)
    return row_of_run(arch, Path(spec["out"]), str(recipe.relative_to(ROOT)),
                      time.perf_counter() - start)


def run_family(spec: dict[str, Any]) -> dict[str, Any]:
    """Train one family in a fresh process; its row, or a row with the error when it failed."""
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        return {"family": spec["arch"], "epochs": spec["epochs"],
                "error": lines[-1].strip() if lines else f"exit code {proc.returncode}",
                "stderr_tail": proc.stderr[-2000:]}
    answer: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return answer


def load_rows(path: Path) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        return {}
    return {key_of(row): row for row in json.loads(path.read_text(encoding="utf-8"))["rows"]}


def key_of(row: dict[str, Any]) -> str:
    """Rows are one per family and epoch count (a recorded longer run keeps its own row)."""
    return f"{row['family']}:{row.get('epochs')}"


def save_rows(path: Path, rows: dict[str, dict[str, Any]]) -> None:
    order = {name: i for i, name in enumerate(family_names())}
    ordered = sorted(rows.values(), key=lambda r: (order.get(r["family"], len(order)),
                                                   r.get("epochs") or 0))
    report = {"what": __doc__.split("\n")[0], "machine": machine_info(), "rows": ordered}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


def table(rows: dict[str, dict[str, Any]]) -> str:
    """The rows as a Markdown table (a failed family: its error)."""
    lines = ["| family | params | epochs | test WER | CER | training time |",
             "|---|---|---|---|---|---|"]
    for row in rows.values():
        name = row["family"] + (f" ({row['recipe']} run)" if row.get("recorded") else "")
        if "error" in row:
            lines.append(f"| {name} | | {row['epochs']} | failed: {row['error']} | | |")
            continue
        lines.append(f"| {name} | {row['params'] / 1e6:.2f}M | {row['epochs']} | "
                     f"{row['test_wer']:.3f} | {row['test_cer']:.3f} | "
                     f"{row['train_s'] / 60:.1f} min ({row['train_s']:.0f} s) |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=FSDD_DATA,
                        help="folder with FSDD's train.jsonl and test.jsonl (wavtune prepare fsdd)")
    parser.add_argument("--epochs", type=int, default=8, help="train.num_epochs of every family")
    parser.add_argument("--families", default="",
                        help="comma-separated model.arch values (default: every family)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/wavtune-families"),
                        help="folder for the runs (RUN per family)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results JSON (rows merged)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="extra config overrides for every family (smoke runs)")
    parser.add_argument("--record-run", default=[], action="append", metavar="FAMILY=RUN",
                        help="add a finished run's row as it is (its own recipe and epochs)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    known = family_names()
    chosen = [name for name in args.families.split(",") if name] or \
        ([] if args.record_run else known)
    unknown = [name for name in chosen if name not in known]
    if unknown:
        parser.error(f"--families: unknown {', '.join(unknown)}; choose from {', '.join(known)}")
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    args.chosen = chosen
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(train_child(json.loads(args.child))), flush=True)
        return 0
    rows = load_rows(args.out)
    for item in args.record_run:
        arch, _, run = item.partition("=")
        row = {**row_of_run(arch, Path(run), "its own"), "recorded": True}
        rows[key_of(row)] = row
    for arch in args.chosen:
        print(f"training {arch} for {args.epochs} epochs ...", flush=True)
        row = run_family({"arch": arch, "epochs": args.epochs, "extra": args.set,
                          "train": str(args.data / "train.jsonl"),
                          "test": str(args.data / "test.jsonl"), "out": str(args.work / arch)})
        rows[key_of(row)] = row
        print(json.dumps({k: v for k, v in row.items() if k != "stderr_tail"}), flush=True)
        save_rows(args.out, rows)  # after each family: a later failure keeps the earlier rows
    save_rows(args.out, rows)
    print(table(load_rows(args.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
