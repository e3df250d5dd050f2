"""A finished run loaded for inference: its published model, input settings, vocabulary and
label heads, read from the run directory as transformers saved them, and its forward pass
(:class:`~wavtune.infer.forward.TorchForward`; an ONNX export's is ONNX Runtime's)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wavtune.data.dataset import AudioSettings
from wavtune.data.labels import LabelSet
from wavtune.data.vocab import Vocabulary
from wavtune.infer.forward import Forward, TorchForward
from wavtune.model.build import model_kind, samples_per_frame
from wavtune.model.families import front_end_of
from wavtune.run.directory import CONFIG_FILE, RunError, load_run_config, load_vocab


def label_sets_of(model: Any, run_dir: Path) -> tuple[LabelSet, ...]:
    """The label heads of a loaded model, in output order (classes in id order)."""
    kind = model_kind(model)
    if kind == "multitask":
        config = model.config
        return tuple(LabelSet(name, config.head_labels(i), (0,) * len(config.head_labels(i)))
                     for i, name in enumerate(config.head_names))
    if kind == "classify":
        id2label = model.config.id2label
        labels = tuple(str(id2label[i]) for i in range(len(id2label)))
        column = "label"
        if (run_dir / CONFIG_FILE).is_file() and load_run_config(run_dir).data.label_columns:
            column = load_run_config(run_dir).data.label_columns[0]
        return (LabelSet(column, labels, (0,) * len(labels)),)
    return ()


def require_model_folder(run_dir: str | Path) -> None:
    """RunError unless ``run_dir`` holds a published model (its ``config.json``)."""
    if not (Path(run_dir) / "config.json").is_file():
        raise RunError(f"{run_dir}: no config.json; is this a finished wavtune run directory?")


class LoadedRun:
    """A finished run's published model, its input settings, vocabulary and label heads."""

    def __init__(self, run_dir: str | Path, device: str = "cpu") -> None:
        from transformers import (
            AutoFeatureExtractor,
            AutoModel,
            AutoModelForAudioClassification,
            AutoModelForCTC,
        )

        from wavtune.model.multitask import MODEL_TYPE, register

        self.root = run_dir = Path(run_dir)
        require_model_folder(run_dir)
        hf_config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
        architectures = hf_config.get("architectures") or [""]
        if hf_config.get("model_type") == MODEL_TYPE:
            register()
            auto: Any = AutoModel
        elif architectures[0].endswith("ForSequenceClassification"):
            auto = AutoModelForAudioClassification
        else:
            auto = AutoModelForCTC
        self.model = auto.from_pretrained(str(run_dir), use_safetensors=True).to(device)
        self.model.eval()
        self.kind = model_kind(self.model)
        has_ctc = self.kind == "ctc" or bool(getattr(self.model.config, "vocab_size", 0)
                                             and self.kind == "multitask")
        self.vocab: Vocabulary | None = load_vocab(run_dir) if has_ctc else None
        self.label_sets = label_sets_of(self.model, run_dir)
        fe = AutoFeatureExtractor.from_pretrained(str(run_dir))
        self.audio = AudioSettings(int(fe.sampling_rate), bool(getattr(fe, "do_normalize", False)),
                                   front_end_of(self.model.config, fe))
        self.use_attention_mask = bool(fe.return_attention_mask)
        self.device = device
        self.samples_per_frame = samples_per_frame(self.model.config)  # input samples per frame
        # the one forward pass inference and evaluation use (ONNX Runtime's in an OnnxRun)
        self.forward: Forward = TorchForward(self.model, self.audio.front_end.input_name,
                                             self.use_attention_mask)

    def adapters(self) -> list[str]:
        """The MMS adapters this run holds: the NAMEs of ``RUN/adapter.NAME.safetensors``."""
        return sorted(p.name[len("adapter."):-len(".safetensors")]
                      for p in self.root.glob("adapter.*.safetensors"))

    def use_adapter(self, name: str) -> None:
        """Swap in the MMS adapter ``RUN/adapter.<name>.safetensors`` (a ``model.peft.method:
        adapter`` run; copy other runs' adapter files beside it to serve several from one base).
        Its vocabulary must be the run's (``vocab.json``)."""
        if name == getattr(self, "adapter", None):
            return  # loaded already
        path = self.root / f"adapter.{name}.safetensors"
        if not path.is_file():
            raise RunError(f"{path}: no such adapter file; this run holds "
                           f"{', '.join(self.adapters()) or 'none (not an adapter run)'}")
        if getattr(self.model.config, "adapter_attn_dim", None) is None:
            raise RunError(f"{self.root}: the published model has no adapter layers "
                           f"(config.json adapter_attn_dim); --adapter needs an adapter run")
        self.model.load_adapter(name)
        self.model.eval()
        self.adapter = name  # the adapter loaded now
