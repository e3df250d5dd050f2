"""Parameter-efficient fine-tuning (issue 17): full fine-tuning vs LoRA vs MMS adapters, one run.

Two parts, each method in its own process (peak RSS is per process):

- **cost**, on the ``base`` preset (wav2vec2-base shape, 95M parameters) saved as a local
  "pre-trained" folder: the same fixed batches for every method (wavtune's model builder,
  optimizer and checkpoint writer, the conv feature encoder frozen as usual): trainable
  parameters, seconds per optimizer step (median after one warm-up step), the process's peak
  RSS, checkpoint size (weights + optimizer state) and adapter artefact size. MMS adapter layers
  exist only in the stable-layer-norm layout (XLS-R, MMS), so the three methods are measured on
  ``base`` with ``do_stable_layer_norm: true``; full and LoRA also on the plain (post-norm)
  ``base``.
- **quality**, on FSDD from an encoder (``--encoder``, default runs/fsdd-pretrain: the
  self-supervised encoder of ``examples/fsdd-pretrain.yaml``): ``wavtune train`` with each method
  and ``examples/fsdd-low-resource.yaml``'s recipe (its seeded 10% of the training labels, steps,
  schedule and SpecAugment), the same steps for every method, each at its own learning rate
  (``--lr METHOD=LR``; PEFT usually wants a few times full fine-tuning's); test WER of the
  published (merged) model. Full fine-tuning here is the recipe as it is (the conv feature
  encoder trains too), so it is the same run as ``benchmarks/pretraining.py``'s pre-trained start.

    python benchmarks/peft_methods.py --parts cost      # ~3 min on 2 idle cores
    python benchmarks/peft_methods.py --parts quality --encoder RUN --data FSDD_MANIFESTS \
        --out benchmarks/results/peft-ssl.json         # ~15 min: three 1,200-step fine-tunes
    python benchmarks/peft_methods.py --quick --encoder RUN  # smoke: tiny preset, a few steps

Results: ``benchmarks/results/peft.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # measure this checkout's wavtune, not an installed one
sys.path.append(str(ROOT / "benchmarks"))  # machine.py (after installed packages)
from machine import machine_info  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "peft.json"
FSDD_DATA = ROOT / "data" / "fsdd"  # wavtune prepare fsdd ... data/fsdd; --data
STABLE = {"do_stable_layer_norm": True, "feat_extract_norm": "layer"}
POST_NORM = {"do_stable_layer_norm": False}
LEARNING_RATES = {"none": 1e-3, "lora": 3e-3, "adapter": 3e-3}  # the recipe's; PEFT a few x
RECIPE = ROOT / "examples" / "fsdd-low-resource.yaml"
TEXTS = ["one two three", "four five", "six seven eight nine", "zero"]


def _folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def save_base(folder: Path, stable: bool, preset: str) -> None:
    """A random-init ``preset`` CTC model saved as a pre-trained folder."""
    from wavtune.config import ModelConfig
    from wavtune.data.vocab import Vocabulary
    from wavtune.model.build import build_ctc_model

    built = build_ctc_model(ModelConfig(preset=preset, overrides=STABLE if stable else POST_NORM),
                            Vocabulary.build(TEXTS))
    built.model.save_pretrained(str(folder))
    built.feature_extractor.save_pretrained(str(folder))


def _batches(steps: int, batch: int, seconds: float, vocab: Any) -> list[dict[str, Any]]:
    import torch

    gen = torch.Generator().manual_seed(0)
    labels = torch.tensor([(vocab.encode(TEXTS[i % len(TEXTS)]) + [-100] * 20)[:20]
                           for i in range(batch)])
    return [{"input_values": torch.randn(batch, int(seconds * 16000), generator=gen),
             "labels": labels} for _ in range(steps)]


def cost_child(spec: dict[str, Any]) -> dict[str, Any]:
    """One method's training steps on the saved base folder, in this process."""
    import torch

    from wavtune.config import ModelConfig, PeftConfig, TrainConfig
    from wavtune.data.vocab import Vocabulary
    from wavtune.model.build import build_ctc_model, count_parameters
    from wavtune.model.peft import save_artifact
    from wavtune.run.directory import RunDir
    from wavtune.train.checkpoint import TrainerState, save_checkpoint
    from wavtune.train.engine import make_optimizer

    torch.manual_seed(0)
    method = spec["method"]
    vocab = Vocabulary.build(TEXTS)
    cfg = ModelConfig(name_or_path=spec["base"], peft=PeftConfig(method=method, r=8),
                      mask_time_prob=0.0, layerdrop=0.0)
    built = build_ctc_model(cfg, vocab)
    model = built.model.train()
    optimizer, scheduler = make_optimizer(model, TrainConfig(learning_rate=1e-4), 100,
                                          trainable_only=method != "none")
    times = []
    for batch in _batches(spec["steps"], spec["batch"], spec["seconds"], vocab):
        start = time.perf_counter()
        model(**batch).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = Path(spec["out"])
    checkpoint = save_checkpoint(RunDir(out), model, optimizer, scheduler,
                                 TrainerState(step=len(times)), trainable_only=method != "none")
    artefact = [f for f in (save_artifact(model, built.tuning, out) if built.tuning else [])
                if f.suffix != ".md"]
    steady = sorted(times[1:]) or times
    return {"params_total": count_parameters(model),
            "params_trainable": count_parameters(model, trainable_only=True),
            "s_per_step": round(steady[len(steady) // 2], 3), "peak_rss_mb": round(peak_mb),
            "checkpoint_mb": round(_folder_bytes(checkpoint) / 1e6, 2),
            "adapter_mb": round(sum(f.stat().st_size for f in artefact) / 1e6, 3)}


def subset(manifest: Path, fraction: float, out: Path, seed: int = 0) -> Path:
    """A seeded random ``fraction`` of ``manifest``'s rows."""
    rows = manifest.read_text(encoding="utf-8").splitlines()
    random.Random(seed).shuffle(rows)
    out.write_text("\n".join(rows[:max(1, int(len(rows) * fraction))]) + "\n", encoding="utf-8")
    return out


def quality_child(spec: dict[str, Any]) -> dict[str, Any]:
    """``wavtune train`` with the low-resource recipe and one method; the published model's WER."""
    from wavtune.config import load_config
    from wavtune.train.trainer import train

    method, lr = spec["method"], spec["learning_rate"]
    overrides = [
        f"data.train={spec['train']}", f"data.test={spec['test']}",
        f"data.train_fraction={spec['fraction']}", "data.allow_outside_paths=true",
        f"model.name_or_path={spec['encoder']}", f"model.peft.method={method}",
        f"train.output_dir={spec['out']}", f"train.max_steps={spec['steps']}",
        f"train.learning_rate={lr}", "train.seed=0", "train.save_total_limit=1",
        "train.logging_steps=1000",
        f"model.freeze_feature_encoder={str(spec['freeze_feature_encoder']).lower()}",
        *spec["extra"],
    ]
    start = time.perf_counter()
    result = train(load_config(RECIPE, overrides), progress=False)
    metrics = json.loads((result.run_dir / "metrics.json").read_text(encoding="utf-8"))
    return {"test_wer": round(metrics["test"]["wer"], 4), "steps": result.steps,
            "params_trainable": metrics["params"]["trainable"],
            "learning_rate": lr, "wall_s": round(time.perf_counter() - start)}


def child(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Run ``kind`` with ``spec`` in a fresh process; its JSON answer."""
    proc = subprocess.run([sys.executable, __file__, "--child", kind, json.dumps(spec)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} {spec.get('method')} failed:\n{proc.stderr[-3000:]}")
    answer: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return answer


def cost(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    shape = {"steps": args.cost_steps, "batch": 4, "seconds": args.clip_s}
    layouts: dict[str, Any] = {}
    for layout, stable, methods in (("stable-layer-norm", True, ("none", "lora", "adapter")),
                                    ("post-norm", False, ("none", "lora"))):
        folder = work / layout
        save_base(folder, stable, args.preset)
        rows = {m: child("cost", {**shape, "method": m, "base": str(folder),
                                  "out": str(work / f"{layout}-{m}")}) for m in methods}
        full = rows["none"]
        for row in rows.values():
            row["trainable_share"] = round(row["params_trainable"] / row["params_total"], 4)
            row["peak_rss_vs_full"] = round(row["peak_rss_mb"] / full["peak_rss_mb"], 3)
            row["s_per_step_vs_full"] = round(row["s_per_step"] / full["s_per_step"], 3)
            row["checkpoint_vs_full"] = round(row["checkpoint_mb"] / full["checkpoint_mb"], 4)
        layouts[layout] = rows
        print(json.dumps({layout: rows}), flush=True)
    return {"preset": args.preset, "batch": shape, "layouts": layouts}


def quality(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    test_rows = subset(args.data / "test.jsonl", args.test_fraction, work / "test-subset.jsonl")
    rates = {**LEARNING_RATES, **dict(_rate(item) for item in args.lr)}
    extra: dict[str, list[str]] = {}
    for item in args.set:  # METHOD:KEY=VALUE
        method, _, setting = item.partition(":")
        extra.setdefault(method, []).append(setting)
    rows = {}
    for method in args.methods.split(","):
        rows[method] = child("quality", {"method": method, "steps": args.quality_steps,
                                         "learning_rate": rates[method],
                                         "freeze_feature_encoder": args.freeze_feature_encoder,
                                         "extra": extra.get(method, []),
                                         "encoder": args.encoder, "fraction": args.fraction,
                                         "train": str(args.data / "train.jsonl"),
                                         "test": str(test_rows),
                                         "out": str(work / f"fsdd-{method}")})
        print(json.dumps({method: rows[method]}), flush=True)
    full = rows.get("none", {}).get("test_wer")
    for row in rows.values():
        row["wer_minus_full"] = round(row["test_wer"] - full, 4) if full is not None else None
    return {"encoder": args.encoder, "recipe": str(RECIPE.relative_to(ROOT)),
            "freeze_feature_encoder": args.freeze_feature_encoder, "settings": extra,
            "label_fraction": args.fraction,
            "test_utterances": len(test_rows.read_text().splitlines()), "methods": rows,
            "within_0_05_of_full": {m: abs(r["wer_minus_full"]) <= 0.05 for m, r in rows.items()
                                    if m != "none" and r["wer_minus_full"] is not None}}


def _rate(item: str) -> tuple[str, float]:
    """``METHOD=LR`` from ``--lr``."""
    method, _, value = item.partition("=")
    if method not in LEARNING_RATES or not value:
        raise SystemExit(f"--lr {item}: expected METHOD=LR with METHOD in {sorted(LEARNING_RATES)}")
    return method, float(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", default=str(ROOT / "runs" / "fsdd-pretrain"),
                        help="encoder folder to start from (a pretrain or train run)")
    parser.add_argument("--data", type=Path, default=FSDD_DATA,
                        help="folder with FSDD train.jsonl and test.jsonl")
    parser.add_argument("--fraction", type=float, default=0.1, help="share of FSDD train labels")
    parser.add_argument("--preset", default="base", help="cost part: the model preset")
    parser.add_argument("--test-fraction", type=float, default=1.0, help="share of FSDD test")
    parser.add_argument("--cost-steps", type=int, default=4)
    parser.add_argument("--clip-s", type=float, default=3.0)
    parser.add_argument("--quality-steps", type=int, default=1200)
    parser.add_argument("--methods", default="none,lora,adapter", help="quality: methods to run")
    parser.add_argument("--freeze-feature-encoder", action="store_true",
                        help="quality: full fine-tuning keeps the conv feature encoder frozen too"
                             " (as PEFT does, and as the seed recipes do)")
    parser.add_argument("--set", action="append", default=[], metavar="METHOD:KEY=VALUE",
                        help="quality: a config setting for one method's runs (repeatable)")
    parser.add_argument("--lr", action="append", default=[], metavar="METHOD=LR",
                        help="quality: a method's learning rate (repeatable)")
    parser.add_argument("--parts", default="cost,quality", help="cost, quality or both")
    parser.add_argument("--quick", action="store_true", help="smoke run (figures meaningless)")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, spec = args.child[0], json.loads(args.child[1])
        print(json.dumps((cost_child if kind == "cost" else quality_child)(spec)))
        return 0
    if args.quick:
        args.cost_steps, args.clip_s, args.quality_steps = 2, 1.0, 4
        args.preset, args.test_fraction = "tiny", 0.1
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="wavtune-peft-") as tmp:
        results: dict[str, Any] = {"command": " ".join(["python", *sys.argv]),
                                   "machine": machine_info()}
        for part, measure in (("cost", cost), ("quality", quality)):
            if part in args.parts.split(","):
                results[part] = measure(Path(tmp), args)
    results["wall_s"] = round(time.perf_counter() - started)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({results['wall_s']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
