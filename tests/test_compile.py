"""``train.compile``: the model compiles in place, trains, and publishes plain weights."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from factories import WORDS, tiny_overrides, write_corpus

from wavtune.config import load_config
from wavtune.data.dataset import AudioSettings
from wavtune.train.loader import train_collator
from wavtune.train.trainer import train


def test_compile_pads_inputs_to_buckets_and_labels_to_sixteen() -> None:
    config = load_config(None, ["model.preset=tiny", "train.compile=true",
                                  "train.compile_pad_s=0.5"])
    collate = train_collator(config.train, AudioSettings(sample_rate=8000))
    assert (collate.pad_to_multiple_of, collate.label_multiple) == (4000, 16)
    plain = train_collator(load_config(None, ["model.preset=tiny"]).train,
                           AudioSettings(sample_rate=8000))
    assert (plain.pad_to_multiple_of, plain.label_multiple) == (1, 1)


def test_a_compiled_run_trains_and_publishes_plain_weights(tmp_path: Path) -> None:
    manifest = write_corpus(tmp_path / "data", WORDS[:4])
    overrides = [*tiny_overrides(tmp_path, manifest, steps=4), "train.compile=true",
                 "train.eval_strategy=epoch", "data.eval=", "train.logging_steps=2"]
    result = train(load_config(None, overrides), progress=False)
    log = [json.loads(line) for line in (result.run_dir / "log.jsonl").read_text().splitlines()]
    assert log and all(torch.isfinite(torch.tensor(r["loss"])) for r in log if "loss" in r)
    from safetensors.torch import load_file

    weights = load_file(result.run_dir / "model.safetensors")
    assert not any("_orig_mod" in name for name in weights)  # no torch.compile wrapper in keys
