"""Parameter-efficient fine-tuning (model.peft): LoRA through peft and MMS adapters, started from a
trained tiny model (LoRA on a random-init frozen encoder only learns to emit blanks).

The base is tinyrun's model, overfit on ``factories.WORDS``; each method then fine-tunes it on
``factories.VARIED`` (the same letters, other words) with the encoder frozen."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from factories import VARIED, tiny_overrides, tone_speech, torchrun, write_corpus
from safetensors.torch import load_file
from tinyrun import tiny_ctc_run

from wavtune.card.model_card import render_card
from wavtune.cli import main
from wavtune.config import load_config
from wavtune.errors import WavtuneError
from wavtune.run.directory import RunDir
from wavtune.train.trainer import TrainResult, train

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj", "intermediate_dense", "output_dense")


def peft_overrides(folder: Path, base: Path, method: str, steps: int,
                   texts: tuple[str, ...] = VARIED) -> list[str]:
    """A run fine-tuning the trained ``base`` run on ``texts`` with ``method``."""
    manifest = write_corpus(folder / "data", texts)
    return [o for o in tiny_overrides(folder, manifest, steps=steps)
            if not o.startswith("model.preset")] + [
        f"model.name_or_path={base}", f"model.peft.method={method}",
        "train.learning_rate=1e-2", "train.save_total_limit=10"]


@pytest.fixture(scope="module")
def base() -> Path:
    return tiny_ctc_run()


@pytest.fixture(scope="module")
def lora(base: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    folder = tmp_path_factory.mktemp("lora")
    return train(load_config(None, peft_overrides(folder, base, "lora", 40)), progress=False)


@pytest.fixture(scope="module")
def adapter(base: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    folder = tmp_path_factory.mktemp("adapter")
    return train(load_config(None, peft_overrides(folder, base, "adapter", 40)), progress=False)


@pytest.mark.parametrize("task", ["multitask", "classify"])
def test_lora_on_label_tasks_trains_the_heads_in_full(task: str, base: Path,
                                                      tmp_path: Path) -> None:
    from factories import WORDS

    manifest = write_corpus(tmp_path / "data", WORDS, extra={"first": [w[0] for w in WORDS]})
    overrides = [o for o in tiny_overrides(tmp_path, manifest, steps=3)
                 if not o.startswith("model.preset")] + [
        f"model.name_or_path={base}", "model.peft.method=lora", f"task={task}",
        "data.label_columns=[first]", "heads.proj_size=16"]
    if task == "classify":
        overrides.append("train.metric_for_best=accuracy")
    result = train(load_config(None, overrides), progress=False)
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert 0 < metrics["params"]["trainable"] < metrics["params"]["total"] / 4
    # the label model holds the CTC run's encoder under its own prefix
    prefix = "encoder." if task == "multitask" else "wav2vec2."
    before = {prefix + n.removeprefix("wav2vec2."): t
              for n, t in load_file(str(base / "model.safetensors")).items()}
    after = load_file(str(result.run_dir / "model.safetensors"))
    head = "heads." if task == "multitask" else "classifier."
    assert any(n.startswith(head) for n in after)
    assert not any("lora_" in n or "modules_to_save" in n for n in after)  # merged, plain
    changed = {n for n in before if n in after and not torch.equal(before[n], after[n])}
    assert changed and all(n.rsplit(".", 2)[-2] in LORA_TARGETS for n in changed)


def _wer_of(run: Path, manifest: Path) -> float:
    from wavtune.data.manifest import read_manifest
    from wavtune.infer.evaluation import evaluate_run
    from wavtune.infer.loaded import LoadedRun

    return float(evaluate_run(LoadedRun(run), read_manifest(manifest),
                              progress=False).scores()["wer"])


@pytest.mark.parametrize("method", ["lora", "adapter"])
def test_each_method_learns_the_new_words_from_the_trained_base(
    method: str, base: Path, request: pytest.FixtureRequest
) -> None:
    result: TrainResult = request.getfixturevalue(method)
    manifest = result.run_dir.parent / "data" / "train.jsonl"
    before = _wer_of(base, manifest)
    assert result.eval is not None
    assert result.eval.scores()["wer"] <= 0.3 < before  # it learnt; the base had not
    # the published folder is a plain transformers model that scores as the run reported
    assert _wer_of(result.run_dir, manifest) == pytest.approx(result.eval.scores()["wer"])


def test_lora_changes_only_the_targeted_linears_and_the_head(base: Path,
                                                             lora: TrainResult) -> None:
    before = load_file(str(base / "model.safetensors"))
    after = load_file(str(lora.run_dir / "model.safetensors"))  # merged
    assert set(after) == set(before)  # no LoRA leftovers in the merged model
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    targeted = {n for n in before if n.endswith(".weight")
                and n.rsplit(".", 2)[-2] in LORA_TARGETS}
    assert changed <= targeted | {"lm_head.weight", "lm_head.bias"}
    assert {"lm_head.weight"} | targeted <= changed  # every target moved (no dead gradient)
    # the frozen conv stack, norms, positional conv and biases are bit-identical
    assert any("feature_extractor" in n for n in before.keys() - changed)


def test_lora_checkpoint_holds_only_the_trainable_tensors(base: Path, lora: TrainResult) -> None:
    metrics = json.loads((lora.run_dir / "metrics.json").read_text())
    checkpoint = RunDir(lora.run_dir).latest_checkpoint()
    assert checkpoint is not None
    assert not (checkpoint / "model.safetensors").exists()
    saved = load_file(str(checkpoint / "trainable.safetensors"))
    assert all("lora_" in n or "modules_to_save" in n for n in saved)
    assert sum(t.numel() for t in saved.values()) == metrics["params"]["trainable"]
    assert metrics["params"]["trainable"] < metrics["params"]["total"] / 4
    full = (base / "model.safetensors").stat().st_size
    assert (checkpoint / "trainable.safetensors").stat().st_size < full / 2


def test_lora_run_resumes_exactly(base: Path, tmp_path: Path) -> None:
    overrides = peft_overrides(tmp_path, base, "lora", 6) + [
        "train.eval_steps=2", "train.train_batch_size=4", "model.peft.dropout=0.1",
        "train.lr_scheduler_type=linear", "train.warmup_steps=2"]
    config = load_config(None, overrides)
    train(config, progress=False)
    run = RunDir(tmp_path / "run")
    expected = load_file(str(run.checkpoint(6) / "trainable.safetensors"))
    for path in run.complete_checkpoints():
        if int(path.name.split("-")[1]) > 4:
            shutil.rmtree(path)
    (run.root / "model.safetensors").unlink()
    assert train(config, resume=True, progress=False).steps == 6
    resumed = load_file(str(run.checkpoint(6) / "trainable.safetensors"))
    assert set(resumed) == set(expected)
    for name, tensor in expected.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=0, atol=1e-6, msg=name)


def test_merged_lora_model_matches_transformers_pipeline_and_peft_adapter(
    base: Path, lora: TrainResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCTC, pipeline

    wave = tone_speech(VARIED[1], seed=1)
    clip = tmp_path / "clip.wav"
    sf.write(clip, wave, 16_000)
    asr = pipeline("automatic-speech-recognition", model=str(lora.run_dir), device="cpu")
    expected = asr({"raw": wave, "sampling_rate": 16_000})["text"]
    assert main(["transcribe", str(lora.run_dir), str(clip), "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == expected == VARIED[1]

    # the artefact users ship: peft's folder, re-attached to the base, gives the merged logits
    adapter_dir = lora.run_dir / "adapter"
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {
        p.name for p in adapter_dir.iterdir()}
    metrics = json.loads((lora.run_dir / "metrics.json").read_text())
    assert metrics["peft"]["method"] == "lora"
    assert metrics["peft"]["adapter_bytes"] == sum(
        (adapter_dir / n).stat().st_size
        for n in ("adapter_config.json", "adapter_model.safetensors"))
    card = render_card(lora.run_dir)
    trainable, total = metrics["params"]["trainable"], metrics["params"]["total"]
    assert (f"LoRA (r=8, alpha=16, dropout 0.0, bias none; targets: the family's attention and "
            f"feed-forward linears) trained {trainable:,} of {total:,} parameters") in card
    assert f"`adapter/` ({metrics['peft']['adapter_bytes'] / 1e6:.2f} MB)" in card
    inputs = torch.from_numpy((wave - wave.mean()) / (wave.std() + 1e-7))[None]
    attached = PeftModel.from_pretrained(AutoModelForCTC.from_pretrained(str(base)),
                                         str(adapter_dir)).eval()
    merged = AutoModelForCTC.from_pretrained(str(lora.run_dir)).eval()
    with torch.no_grad():
        torch.testing.assert_close(attached(inputs).logits, merged(inputs).logits,
                                   rtol=1e-4, atol=1e-4)


def test_adapter_run_trains_only_adapter_layers_and_loads_with_load_adapter(
    base: Path, adapter: TrainResult
) -> None:
    from transformers import AutoModelForCTC

    before = load_file(str(base / "model.safetensors"))
    after = load_file(str(adapter.run_dir / "model.safetensors"))
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed == {"lm_head.weight", "lm_head.bias"}  # the encoder is bit-identical
    assert any(".adapter_layer." in n for n in set(after) - set(before))

    artefact = adapter.run_dir / "adapter.default.safetensors"
    metrics = json.loads((adapter.run_dir / "metrics.json").read_text())
    assert metrics["peft"]["adapter_bytes"] == artefact.stat().st_size
    assert metrics["params"]["trainable"] == sum(
        t.numel() for t in load_file(str(artefact)).values())
    card = render_card(adapter.run_dir)
    assert "MMS adapters (adapter_attn_dim=16, name `default`) trained" in card
    assert ("artefact, `adapter.default.safetensors` (0.01 MB), loads with "
            '`model.load_adapter("default")`') in card
    # transformers' own MMS loader restores the adapter into a model whose adapters were reset
    model = AutoModelForCTC.from_pretrained(str(adapter.run_dir)).eval()
    inputs = torch.from_numpy(tone_speech(VARIED[0]))[None]
    with torch.no_grad():
        expected = model(inputs).logits
        for name, param in model.named_parameters():
            if ".adapter_layer." in name or name.startswith("lm_head"):
                param.zero_()
        assert not torch.allclose(model(inputs).logits, expected)
        model.load_adapter("default")
        torch.testing.assert_close(model(inputs).logits, expected)


def test_transcribe_picks_an_adapter_by_name(adapter: TrainResult, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    clip = tmp_path / "clip.wav"
    sf.write(clip, tone_speech(VARIED[0], seed=0), 16_000)
    assert main(["transcribe", str(adapter.run_dir), str(clip), "--quiet",
                 "--adapter", "default"]) == 0
    assert capsys.readouterr().out.strip() == VARIED[0]
    assert main(["transcribe", str(adapter.run_dir), str(clip), "--adapter", "xx"]) != 0
    assert "adapter.xx.safetensors: no such adapter file; this run holds default" in (
        capsys.readouterr().err)


def test_serve_picks_the_adapter_per_request(adapter: TrainResult, tmp_path: Path) -> None:
    """Two adapters on one base (the second: the first with a zeroed head, so it emits only
    blanks); each request names one and gets that adapter's transcript."""
    pytest.importorskip("fastapi")
    from safetensors.torch import save_file
    from servers import request, running_server, upload, wav_bytes

    run = tmp_path / "run"
    shutil.copytree(adapter.run_dir, run, ignore=shutil.ignore_patterns("checkpoints"))
    silent = {n: torch.zeros_like(t) if n.startswith("lm_head") else t
              for n, t in load_file(str(run / "adapter.default.safetensors")).items()}
    save_file(silent, str(run / "adapter.silent.safetensors"))
    clip = wav_bytes(tone_speech(VARIED[0], seed=0), 16_000)
    with running_server(run) as server:
        assert request(f"{server}/health")[1]["adapters"] == ["default", "silent"]
        for name, text in (("silent", ""), ("default", VARIED[0]), ("silent", "")):
            status, body = upload(server, clip, f"?adapter={name}")
            assert (status, body["text"]) == (200, text)
        status, body = upload(server, clip, "?adapter=fr")
        assert status == 404 and "default, silent" in body["detail"]


@pytest.mark.parametrize("setting, message", [
    ("model.peft.method=prefix", "model.peft.method"),
    ("model.peft.r=0", "model.peft.r"),
    ("model.peft.adapter_attn_dim=0", "adapter_attn_dim"),
])
def test_bad_peft_settings_are_config_errors(setting: str, message: str, tmp_path: Path) -> None:
    manifest = write_corpus(tmp_path, ("ab",))
    with pytest.raises(WavtuneError, match=message):
        load_config(None, [*tiny_overrides(tmp_path, manifest, steps=2), setting,
                           *(["model.peft.method=lora"] if "method" not in setting else [])])


def test_peft_and_freeze_encoder_steps_are_exclusive(tmp_path: Path) -> None:
    manifest = write_corpus(tmp_path, ("ab",))
    with pytest.raises(WavtuneError, match="freeze_encoder_steps"):
        load_config(None, [*tiny_overrides(tmp_path, manifest, steps=2),
                           "model.peft.method=lora", "model.freeze_encoder_steps=5"])


def test_bad_target_module_fails_before_training_with_the_valid_names(
    base: Path, tmp_path: Path
) -> None:
    overrides = peft_overrides(tmp_path, base, "lora", 2) + ["model.peft.target_modules=[qkv]"]
    with pytest.raises(WavtuneError, match="'qkv'.*valid names:.*q_proj"):
        train(load_config(None, overrides), progress=False)
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("preset_or_arch, fix", [
    ("model.preset=base", "post-norm"), ("model.arch=hubert", "hubert"),
])
def test_adapter_on_an_encoder_without_adapter_layers_is_a_clear_error(
    preset_or_arch: str, fix: str
) -> None:
    from wavtune.config import ModelConfig, PeftConfig
    from wavtune.data.vocab import Vocabulary
    from wavtune.model.build import build_ctc_model

    key, value = preset_or_arch.split("=")
    fields = {"preset": "tiny", key.split(".")[1]: value}
    overrides = {"num_hidden_layers": 1, "hidden_size": 16, "num_attention_heads": 2,
                 "intermediate_size": 16} if value == "base" else {}
    cfg = ModelConfig(**fields, overrides=overrides, peft=PeftConfig(method="adapter"))
    with pytest.raises(WavtuneError, match=f"{fix}.*model.peft.method=lora"):
        build_ctc_model(cfg, Vocabulary.build(["ab"]))


def test_reentrant_checkpointing_trap_is_diagnosed_after_the_first_backward() -> None:
    """Reentrant activation checkpointing over a frozen feature encoder: the checkpointed
    layers' inputs need no grad, so LoRA inside them silently gets none. check_gradients says so;
    the non-reentrant form wavtune enables gives every LoRA tensor its gradient."""
    from wavtune.config import ModelConfig, PeftConfig
    from wavtune.data.vocab import Vocabulary
    from wavtune.model.build import build_ctc_model
    from wavtune.model.peft import PeftError, check_gradients

    vocab = Vocabulary.build(["abc"])
    inputs = torch.from_numpy(np.stack([tone_speech("abc"), tone_speech("abc", seed=1)]))
    labels = torch.tensor([vocab.encode("abc")] * 2)
    for reentrant in (True, False):
        cfg = ModelConfig(preset="tiny", peft=PeftConfig(method="lora"), layerdrop=0.0,
                          gradient_checkpointing=not reentrant)
        model = build_ctc_model(cfg, vocab).model
        if reentrant:
            model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": True})
        model.train()
        model(inputs, labels=labels).loss.backward()
        # lora_B starts at zero, so lora_A's first gradient is zero by design: B must move
        if reentrant:
            with pytest.raises(PeftError, match="no gradient"):
                check_gradients(model)
        else:
            check_gradients(model)


@pytest.mark.slow
def test_lora_trains_under_two_processes_and_writes_the_adapter_once(
    base: Path, lora: TrainResult, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("task: ctc\n", encoding="utf-8")
    torchrun("train", str(config), settings=peft_overrides(tmp_path, base, "lora", 40))
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["num_processes"] == 2
    assert metrics["params"]["trainable"] == json.loads(
        (lora.run_dir / "metrics.json").read_text())["params"]["trainable"]
    assert metrics["eval"]["wer"] <= 0.3  # learnt the new words, as one process does
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {
        p.name for p in (run / "adapter").iterdir()}
    # frozen weights stay as they were: the conv feature encoder is bit-identical to the base's
    merged, start = load_file(run / "model.safetensors"), load_file(base / "model.safetensors")
    conv = [n for n in start if "feature_extractor" in n]
    assert conv and all(torch.equal(merged[n], start[n]) for n in conv)
