"""Label efficiency of self-supervised pre-training on FSDD, measured in one run.

1. ``wavtune pretrain examples/fsdd-pretrain.yaml`` (``--objective contrastive``, wav2vec 2.0)
   or ``examples/fsdd-pretrain-hubert.yaml`` (``--objective hubert``: masked prediction of
   k-means clusters of MFCC frames) on the FSDD training audio (labels unused) for
   ``--pretrain-steps`` optimizer steps (``--encoder DIR`` reuses a pre-trained folder instead).
2. For each label share in ``--fractions`` (default 0.01 0.1 1.0; 10% is 270 clips, 45 per
   speaker), CTC fine-tuning with ``examples/fsdd-low-resource.yaml`` for ``--finetune-steps``
   steps from (a) the pre-trained folder, its conv feature encoder frozen as every seed recipe
   keeps it, and (b) the same architecture with fresh weights (``model.random_init=true``), both
   with the conv feature encoder training (a from-scratch model needs it) and frozen; same data,
   seed and steps; the last step is published. The baseline is the better random_init run.
3. Test WER/CER of each on the 300 FSDD test clips, the ratio pre-trained / best random_init, the
   pre-training's first and final figures (loss, accuracy, perplexity) and wall times. Results:
   ``benchmarks/results/pretraining.json`` (contrastive) or ``pretraining-hubert.json``;
   ``--plot`` draws the curve.

    python benchmarks/pretraining.py --manifests data/fsdd --out /tmp/pretrain-bench
    python benchmarks/pretraining.py --objective hubert --manifests data/fsdd --out /tmp/hb
    python benchmarks/pretraining.py --encoder runs/fsdd-pretrain --out /tmp/b  # fine-tunes only
    python benchmarks/pretraining.py --quick --out /tmp/pretrain-smoke     # smoke, ~1 min

``--stage pretrain`` then ``--stage finetune`` (same ``--out``) split the run in two shorter
ones. ``--manifests DIR`` holds ``train.jsonl`` and ``test.jsonl`` (``wavtune prepare fsdd``).
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

RESULTS_DIR = ROOT / "benchmarks" / "results"
# per objective: the pre-training config, the results file, the figures followed
OBJECTIVES = {
    "contrastive": (ROOT / "examples" / "fsdd-pretrain.yaml", RESULTS_DIR / "pretraining.json",
                    "contrastive_loss", ("contrastive_loss", "diversity_loss",
                                         "codevector_perplexity", "contrastive_accuracy",
                                         "gumbel_temperature", "grad_norm")),
    "hubert": (ROOT / "examples" / "fsdd-pretrain-hubert.yaml",
               RESULTS_DIR / "pretraining-hubert.json", "masked_loss",
               ("masked_loss", "unmasked_loss", "masked_accuracy", "cluster_perplexity",
                "target_perplexity", "grad_norm")),
}
FINETUNE_YAML = ROOT / "examples" / "fsdd-low-resource.yaml"
TARGET_RATIO = 0.75  # issue 16: pre-trained WER at most 0.75x random_init's at 10% of labels
TARGET_WER = 0.45


def _records(run: Path) -> list[dict[str, Any]]:
    log = run / "log.jsonl"  # absent when a run ends before its first logging window
    return [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []


def _last(records: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in records if key in r]
    return float(values[-1]) if values else None


def pretrain_figures(run: Path, objective: str = "contrastive") -> dict[str, Any]:
    """The pre-training run's first and final logged windows and its metrics.json."""
    records = _records(run)
    metrics = json.loads((run / "metrics.json").read_text())
    key, followed = OBJECTIVES[objective][2:]
    first = next((r for r in records if key in r), {})
    return {
        "objective": metrics.get("objective", objective),
        "steps": metrics["last_step"], "published_step": metrics["published_step"],
        "train_hours": metrics["train_hours"], "train_utterances": metrics["train_utterances"],
        "wall_s": metrics["train_runtime_s"],
        f"first_{key}": first.get(key),
        **{f"final_{k}": _last(records, k) for k in followed},
        "eval": metrics.get("eval"),
    }


def run_pretrain(args: argparse.Namespace, out: Path) -> Path:
    from wavtune.config import load_config
    from wavtune.train.pretrain_run import pretrain

    overrides = [f"data.train={Path(args.manifests) / 'train.jsonl'}",
                 f"train.max_steps={args.pretrain_steps}", f"train.output_dir={out}",
                 "train.overwrite_output_dir=true", "train.device=cpu", *args.pretrain_set]
    pretrain(load_config(OBJECTIVES[args.objective][0], overrides), progress=False)
    return out


def run_finetune(args: argparse.Namespace, start: Path, out: Path, fraction: float,
                 random_init: bool, frozen: bool) -> dict[str, Any]:
    from wavtune.config import load_config
    from wavtune.train.trainer import train

    manifests = Path(args.manifests)
    overrides = [f"data.train={manifests / 'train.jsonl'}",
                 f"data.test={manifests / 'test.jsonl'}", f"data.train_fraction={fraction}",
                 f"model.name_or_path={start}", f"model.random_init={str(random_init).lower()}",
                 f"model.freeze_feature_encoder={str(frozen).lower()}",
                 f"train.max_steps={args.finetune_steps}",
                 f"train.output_dir={out}", "train.overwrite_output_dir=true",
                 "train.device=cpu", *args.finetune_set]
    result = train(load_config(FINETUNE_YAML, overrides), progress=False)
    metrics = json.loads((out / "metrics.json").read_text())
    assert result.test is not None, "the fine-tuning config names a test set"
    return {"start": "random_init" if random_init else "pretrained", "fraction": fraction,
            "freeze_feature_encoder": frozen,
            "train_utterances": metrics.get("train_data", {}).get("utterances"),
            "steps": result.steps, "wall_s": round(result.wall_s, 1),
            "test_wer": result.test.wer, "test_cer": result.test.cer,
            "final_train_loss": _last(_records(out), "loss")}


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


STARTS = (("pretrained", False, True), ("random_init", True, False),
          ("random_init_frozen", True, True))  # (name, random_init, feature encoder frozen)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Pre-train (``--stage all|pretrain``), then fine-tune from it (``all|finetune``: a
    ``finetune`` stage starts from the folder an earlier ``pretrain`` stage left in ``--out``)."""
    out = Path(args.out)
    start = time.perf_counter()
    pre_run = Path(args.encoder) if args.encoder else out / "pretrain"
    if args.stage != "finetune" and not args.encoder:
        run_pretrain(args, pre_run)
    figures: dict[str, Any] = {"pretrain": pretrain_figures(pre_run, args.objective),
                               "fine_tune": []}
    for fraction in args.fractions if args.stage != "pretrain" else ():
        row: dict[str, Any] = {"fraction": fraction}
        for name, random_init, frozen in STARTS:
            row[name] = run_finetune(args, pre_run, out / f"ft-{fraction:g}-{name}", fraction,
                                     random_init, frozen)
            print(json.dumps({f"{fraction:g}": {name: row[name]}}), flush=True)
        baseline = min(row["random_init"]["test_wer"], row["random_init_frozen"]["test_wer"])
        ratio = row["pretrained"]["test_wer"] / max(baseline, 1e-9)
        row.update({"best_random_init_wer": baseline, "wer_ratio": round(ratio, 4),
                    "meets_ratio_target": ratio <= TARGET_RATIO,
                    "meets_wer_target": row["pretrained"]["test_wer"] <= TARGET_WER})
        figures["fine_tune"].append(row)
    figures["total_wall_s"] = round(time.perf_counter() - start, 1)
    return figures


def plot(report: dict[str, Any], path: Path) -> None:
    """Test WER against the share of training labels, pre-trained vs the best random_init."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["fine_tune"]
    shares = [100 * r["fraction"] for r in rows]
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot(shares, [r["pretrained"]["test_wer"] for r in rows], "o-",
            label=f"self-supervised pre-training ({report.get('objective', 'contrastive')})")
    ax.plot(shares, [r["best_random_init_wer"] for r in rows], "s--", label="random init (best)")
    ax.set(xscale="log", xlabel="share of FSDD training labels (%)", ylabel="test WER",
           title=f"FSDD, {report['finetune_steps']} fine-tuning steps each", ylim=(0, 1.05))
    ax.set_xticks(shares, [f"{s:g}" for s in shares])
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--manifests", default=str(ROOT / "data" / "fsdd"),
                   help="folder with FSDD train.jsonl and test.jsonl")
    p.add_argument("--out", required=True, help="work folder for the runs (outside the repo)")
    p.add_argument("--pretrain-steps", type=int, default=1500)
    p.add_argument("--finetune-steps", type=int, default=1200)
    p.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    p.add_argument("--encoder", default="", help="a pre-trained folder: skip pre-training")
    p.add_argument("--plot", default="", help="PNG of the label-efficiency curve")
    p.add_argument("--pretrain-set", nargs="*", default=[], help="extra pretrain --set items")
    p.add_argument("--finetune-set", nargs="*", default=[], help="extra train --set items")
    p.add_argument("--objective", choices=tuple(OBJECTIVES), default="contrastive",
                   help="pre-training objective (its examples/fsdd-pretrain*.yaml and results)")
    p.add_argument("--stage", choices=("all", "pretrain", "finetune"), default="all",
                   help="pretrain only, or fine-tune from --out's pretrain folder (results are "
                   "written once fine-tuning ran), to keep each run short")
    p.add_argument("--quick", action="store_true", help="smoke: a few steps each, not saved")
    p.add_argument("--results", default=None, help="results JSON (default: the objective's)")
    args = p.parse_args(argv)
    args.results = args.results or str(OBJECTIVES[args.objective][1])
    commit = _commit()  # the code measured, before any later commit moves HEAD
    if args.quick:
        args.pretrain_steps, args.finetune_steps = 20, 20
        args.pretrain_set = ["train.eval_steps=10", *args.pretrain_set]
    figures = measure(args)
    report = {"benchmark": "pretraining", "objective": args.objective, "commit": commit,
              "quick": args.quick, "machine": machine_info(),
              "command": " ".join(["python", "benchmarks/pretraining.py", *(argv or sys.argv[1:])]),
              "pretrain_steps": args.pretrain_steps, "finetune_steps": args.finetune_steps,
              "targets": {"wer_ratio_at_most": TARGET_RATIO, "wer_at_most": TARGET_WER},
              **figures}
    text = json.dumps(report, indent=2)
    print(text)
    if not args.quick and args.stage != "pretrain":
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        Path(args.results).write_text(text + "\n")
    if args.plot:
        plot(report, Path(args.plot))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
