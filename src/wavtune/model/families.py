"""The model-family registry: what wavtune needs to know about each encoder family, in one place.

A family is a transformers ``model_type`` (``wav2vec2``, ``hubert``, ``wav2vec2-bert``, ...). Its
entry says what the encoder reads (a raw waveform, or fbank features for Wav2Vec2-BERT), how
output frames follow from input samples (conv strides; fbank hop, stacking and adapter stride),
whether padding changes its outputs (then inference batches clips alone), which random-init
presets are valid for it, which tasks and exports it supports, which modules LoRA targets,
whether it has MMS adapter layers, which settings its fine-tuning recipe gives a released
encoder and which class has a self-supervised pre-training head. Code elsewhere asks the
registry (:func:`family_of`, :func:`front_end_of`) instead of branching on the family.

Adding a family: one :class:`Family` entry in :data:`FAMILIES` (and a smoke test).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from transformers import PretrainedConfig, SeamlessM4TFeatureExtractor, Wav2Vec2FeatureExtractor

from wavtune.constants import SAMPLE_RATE
from wavtune.data.frames import FrameGeometry, conv_geometry, fbank_geometry
from wavtune.data.frontend import FrontEnd
from wavtune.errors import WavtuneError

# what the encoder reads: ``input_values`` [batch, samples] or ``input_features``
# [batch, frames, 160]
InputKind = Literal["waveform", "features"]
TASKS = ("ctc", "classify", "multitask")


class ModelError(WavtuneError, ValueError):
    """A model cannot be built or loaded; the message says which setting to change."""


class FamilyError(ModelError):
    """A model family wavtune cannot train, or a setting it does not have."""


# Random-init sizes of wav2vec2-style encoders. All keep wav2vec2's 320-sample frame stride
# (20 ms at 16 kHz) with fewer conv layers, so CTC frame rates match the pre-trained models and
# recipes carry over.
WAV2VEC2_PRESETS: dict[str, dict[str, Any]] = {
    # ~60k parameters: unit tests, smoke runs
    "tiny": dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(32, 32, 32), conv_kernel=(10, 8, 8), conv_stride=(5, 8, 8),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, feat_extract_norm="layer",
        do_stable_layer_norm=True,
    ),
    # ~1M parameters: from-scratch recipes on small corpora (FSDD, the synthetic demo)
    "small": dict(
        hidden_size=144, num_hidden_layers=4, num_attention_heads=4, intermediate_size=384,
        conv_dim=(128, 128, 128, 128), conv_kernel=(10, 4, 4, 4), conv_stride=(5, 4, 4, 4),
        num_conv_pos_embeddings=32, num_conv_pos_embedding_groups=8, feat_extract_norm="layer",
        do_stable_layer_norm=True,
    ),
    # the shape of facebook/wav2vec2-base (95M parameters), for GPU benchmarks from scratch
    "base": dict(
        hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
        feat_extract_norm="group", do_stable_layer_norm=False,
    ),
}

# Random-init sizes of Wav2Vec2-BERT (fbank front end, conformer layers, conv adapter). Frames:
# 10 ms fbank hop * 2 stacked * adapter stride 2 = 40 ms per CTC frame.
W2V_BERT_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        output_hidden_size=32, conv_depthwise_kernel_size=7, add_adapter=True,
        num_adapter_layers=1, adapter_kernel_size=3, adapter_stride=2,
    ),
    "small": dict(
        hidden_size=144, num_hidden_layers=4, num_attention_heads=4, intermediate_size=384,
        output_hidden_size=144, conv_depthwise_kernel_size=15, add_adapter=True,
        num_adapter_layers=1, adapter_kernel_size=3, adapter_stride=2,
    ),
    # the shape of facebook/w2v-bert-2.0 (580M parameters)
    "base": dict(add_adapter=True, num_adapter_layers=1),
}

# attention projections and feed-forward linears of wav2vec2-style encoder layers
ATTENTION_AND_FFN = ("q_proj", "k_proj", "v_proj", "out_proj", "intermediate_dense",
                     "output_dense")

# the same in conformer layers (wav2vec2-conformer, wav2vec2-bert), whose attention names differ
CONFORMER_TARGETS = ("linear_q", "linear_k", "linear_v", "linear_out", "intermediate_dense",
                     "output_dense")


@dataclass(frozen=True)
class Family:
    """One encoder family (a transformers ``model_type``)."""

    name: str
    input_kind: InputKind = "waveform"
    presets: Mapping[str, dict[str, Any]] = field(default_factory=lambda: WAV2VEC2_PRESETS)
    lora_targets: tuple[str, ...] = ATTENTION_AND_FFN
    pretraining_class: str | None = None  # transformers class with an SSL pre-training head
    # padding reaches real frames whatever the mask (conformer depthwise convolutions read the
    # padded frames): batched inference runs clips alone
    pads_into_outputs: bool = False
    tasks: tuple[str, ...] = TASKS
    onnx_unsupported: str = ""  # why ONNX export is refused ('' when it works)
    # (low, high) ms per CTC output frame that this family's fine-tuning recipe found stable
    # (None: no such fact); outside it training warns, naming the setting to change
    stable_frame_ms: tuple[float, float] | None = None
    # transformers builds MMS adapter layers (``adapter_attn_dim``) into this family's
    # stable-layer-norm encoder layers: model.peft.method=adapter trains them
    mms_adapters: bool = False
    # config fields this family's CTC fine-tuning recipe sets on a released *encoder* (not on a
    # checkpoint that already has a head): w2v-BERT 2.0's blog recipe turns the conv adapter on
    # and SpecAugment and LayerDrop off; a field the user sets wins
    fine_tuning_defaults: Mapping[str, Any] = field(default_factory=dict)

    @property
    def pretrain_objectives(self) -> tuple[str, ...]:
        """The ``pretrain.objective`` values ``wavtune pretrain`` runs for this family:
        contrastive needs transformers' ``*ForPreTraining`` head (``pretraining_class``); hubert
        (masked prediction of MFCC cluster ids) puts a projection on the family's base model,
        whose targets are cut from the waveform, so waveform families only."""
        contrastive = ("contrastive",) if self.pretraining_class else ()
        return contrastive + (("hubert",) if self.input_kind == "waveform" else ())

    def geometry(self, config: PretrainedConfig) -> FrameGeometry:
        """Frame geometry of an encoder config of this family."""
        if self.input_kind == "features":
            # transformers' adapter convs pad stride // 2 frames on each side
            adapter = ((int(config.adapter_kernel_size), int(config.adapter_stride),
                        int(config.adapter_stride) // 2),) * int(config.num_adapter_layers)
            return fbank_geometry(400, 160, 2, adapter if config.add_adapter else ())
        return conv_geometry(config.conv_kernel, config.conv_stride)

    def padding_sensitive(self, config: PretrainedConfig) -> bool:
        """True when a padded batch gives real frames other outputs than each clip alone: the
        family's layers read padding, or a group-norm feature encoder (no attention mask,
        transformers#21534) normalises over it."""
        return self.pads_into_outputs or getattr(config, "feat_extract_norm", "") == "group"

    def default_feature_extractor(self, config: PretrainedConfig, sample_rate: int = SAMPLE_RATE
                                  ) -> Any:
        """The transformers feature extractor of a random-init model of this family."""
        if self.input_kind == "features":  # 80 mel bins stacked by 2 (w2v-BERT 2.0's own)
            return SeamlessM4TFeatureExtractor(sampling_rate=sample_rate)
        # group-norm conv stacks were pre-trained on unpadded audio: no attention mask
        return Wav2Vec2FeatureExtractor(
            feature_size=1, sampling_rate=sample_rate, padding_value=0.0, do_normalize=True,
            return_attention_mask=getattr(config, "feat_extract_norm", "layer") == "layer")

    def front_end(self, config: PretrainedConfig, extractor: Any) -> FrontEnd:
        """How batches of waveforms become this model's inputs, and how it must be batched."""
        return FrontEnd(
            input_name="input_features" if self.input_kind == "features" else "input_values",
            use_attention_mask=bool(getattr(extractor, "return_attention_mask", True)),
            padding_sensitive=self.padding_sensitive(config),
            extractor=extractor if self.input_kind == "features" else None,
            sample_rate=int(extractor.sampling_rate))

    def check_config(self, config: PretrainedConfig) -> None:
        """FamilyError, before training, for encoder settings transformers gets wrong."""
        if self.input_kind == "features" and getattr(config, "add_adapter", False) and \
                int(config.adapter_stride) < 2:
            # the adapter convs pad stride // 2 = 0 frames, so a kernel-3 stride-1 layer drops 2
            # frames, but _get_feat_extract_output_lengths keeps them: the CTC loss then fails
            # ("input_lengths to have value at most 9, but got 10")
            raise FamilyError(f"model.arch={self.name!r}: adapter_stride "
                              f"{config.adapter_stride} gives CTC lengths that transformers "
                              "computes wrongly (the loss fails); for 20 ms frames set "
                              "model.overrides.add_adapter: false, or keep adapter_stride >= 2")

    def frame_ms(self, config: PretrainedConfig, sample_rate: int) -> float:
        """Milliseconds of audio per CTC output frame (the model's output frame duration)."""
        return 1000.0 * self.geometry(config).samples_per_frame / sample_rate

    def frame_warning(self, config: PretrainedConfig, sample_rate: int) -> str:
        """Why this model's output frame duration is outside :attr:`stable_frame_ms` and which
        setting to change, or '' (inside the band, or no band for this family)."""
        if self.stable_frame_ms is None:
            return ""
        low, high = self.stable_frame_ms
        ms = self.frame_ms(config, sample_rate)
        if low <= ms <= high:
            return ""
        geometry = self.geometry(config)
        hop_ms = 1000.0 * getattr(geometry, "hop", geometry.samples_per_frame) / sample_rate
        stack = int(getattr(geometry, "stack", 1))
        strides = [stride for _, stride, _ in getattr(geometry, "adapter", ())]
        how = f"{hop_ms:g} ms fbank hop x {stack} stacked" + "".join(f" x adapter stride {s}"
                                                                 for s in strides)
        hop = int(getattr(geometry, "hop", geometry.samples_per_frame))
        rate_fix = (f"set model.sample_rate: 16000 (the fbank hop is {hop} samples, 10 ms at "
                    "16 kHz)")
        fix = rate_fix
        if strides and ms > high:
            fix = ("set model.overrides.add_adapter: false (then hop x stack = "
                   f"{hop_ms * stack:g} ms) or a smaller model.overrides.adapter_stride")
            if not low <= hop_ms * stack <= high:
                fix = f"{rate_fix} and {fix}"
        return (f"model.arch={self.name!r}: {ms:g} ms per CTC output frame ({how} at "
                f"{sample_rate} Hz) is outside the {low:g}-{high:g} ms the w2v-BERT fine-tuning "
                f"recipe found stable; {fix}")

    def fine_tuning_fields(self, config: PretrainedConfig, explicit: Collection[str]
                           ) -> dict[str, Any]:
        """The recipe defaults to load pre-trained ``config`` with for CTC fine-tuning: none
        when its checkpoint has any task head (a fine-tuned model keeps its settings; only a
        bare encoder, ``*Model`` or ``*ForPreTraining``, or none named, gets them), and none of
        the ``explicit`` fields the user set."""
        encoder_only = ("Model", "ForPreTraining")
        if not all(str(a).endswith(encoder_only) for a in config.architectures or ()):
            return {}
        return {k: v for k, v in self.fine_tuning_defaults.items() if k not in explicit}

    def check_task(self, task: str) -> None:
        """FamilyError, before training, for a task this family cannot train."""
        if task not in self.tasks:
            raise FamilyError(f"task {task!r} is not supported for model.arch={self.name!r} "
                              f"(it supports {', '.join(self.tasks)}); use a waveform family such "
                              f"as wav2vec2-conformer for {task}")

    def preset(self, name: str) -> dict[str, Any]:
        """The config fields of random-init preset ``name``; a clear error for an unknown one."""
        if name not in self.presets:
            raise FamilyError(f"model.preset={name!r} is unknown for {self.name}; choose one of "
                              f"{', '.join(self.presets)}")
        return dict(self.presets[name])


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("wav2vec2", pretraining_class="Wav2Vec2ForPreTraining", mms_adapters=True),
    Family("wav2vec2-conformer", pretraining_class="Wav2Vec2ConformerForPreTraining",
           pads_into_outputs=True, lora_targets=CONFORMER_TARGETS),
    Family("wav2vec2-bert", input_kind="features", presets=W2V_BERT_PRESETS,
           lora_targets=CONFORMER_TARGETS,
           fine_tuning_defaults={"add_adapter": True, "mask_time_prob": 0.0, "layerdrop": 0.0},
           tasks=("ctc",), stable_frame_ms=(10.0, 35.0)),
    Family("hubert"),
    Family("wavlm"),
    # its stacked positional convolutions carry padded frames into real ones
    Family("data2vec-audio", pads_into_outputs=True),
    # squeeze pooling (2 frames into 1) and upsampling: a padded clip's last frame, when its
    # frame count is odd, comes from a pooled pair half of padding (alone: zeros after it)
    Family("sew", pads_into_outputs=True),
    Family("sew-d", pads_into_outputs=True),
    Family("unispeech", pretraining_class="UniSpeechForPreTraining"),
    Family("unispeech-sat", pretraining_class="UniSpeechSatForPreTraining"),
)}


def family(name: str) -> Family:
    """The family registered as ``name`` (``model.arch``), or an error listing them."""
    found = FAMILIES.get(name)
    if found is None:
        raise FamilyError(f"model.arch={name!r}: not a family wavtune trains; use one of "
                          f"{', '.join(FAMILIES)}")
    return found


def families_for(task: str) -> tuple[str, ...]:
    """The families that train ``task`` (for messages that say what to use instead)."""
    return tuple(name for name, f in FAMILIES.items() if task in f.tasks)


def families_for_objective(objective: str) -> tuple[str, ...]:
    """The families ``wavtune pretrain`` runs with ``pretrain.objective=objective``."""
    return tuple(name for name, f in FAMILIES.items() if objective in f.pretrain_objectives)


def encoder_config(config: PretrainedConfig) -> PretrainedConfig:
    """The encoder's config: the nested one of a multi-task model, else ``config`` itself."""
    nested = getattr(config, "encoder", None)
    return nested if isinstance(nested, PretrainedConfig) else config


def family_of(config: PretrainedConfig) -> Family:
    """The family of a model's config (a multi-task model's: its encoder's)."""
    return family(str(encoder_config(config).model_type))


def geometry_of(config: PretrainedConfig) -> FrameGeometry:
    """Frame geometry of any model config wavtune builds (CTC, classifier, multi-task)."""
    encoder = encoder_config(config)
    return family_of(encoder).geometry(encoder)


def front_end_of(config: PretrainedConfig, extractor: Any) -> FrontEnd:
    """The front end of any model wavtune builds, given its saved feature extractor."""
    encoder = encoder_config(config)
    return family_of(encoder).front_end(encoder, extractor)
