"""The model-family registry: what wavtune needs to know about each encoder family, in one place.

A family is a transformers ``model_type`` (``wav2vec2``, ``hubert``, ...). Its entry says what
the encoder reads (a raw waveform today), how output frames follow from input samples (the conv
feature encoder's kernels and strides), which random-init presets are valid for it, which
modules LoRA targets and which class has a self-supervised pre-training head. Code elsewhere asks
the registry (:func:`family_of`) instead of branching on the family.

Adding a family: one :class:`Family` entry in :data:`FAMILIES` (and a smoke test).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from transformers import PretrainedConfig

from wavtune.data.frames import FrameGeometry, conv_geometry
from wavtune.errors import WavtuneError

InputKind = Literal["waveform"]  # what the encoder reads: ``input_values`` [batch, samples]


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

# attention projections and feed-forward linears of wav2vec2-style encoder layers
ATTENTION_AND_FFN = ("q_proj", "k_proj", "v_proj", "out_proj", "intermediate_dense",
                     "output_dense")


@dataclass(frozen=True)
class Family:
    """One encoder family (a transformers ``model_type``)."""

    name: str
    input_kind: InputKind = "waveform"
    presets: Mapping[str, dict[str, Any]] = field(default_factory=lambda: WAV2VEC2_PRESETS)
    lora_targets: tuple[str, ...] = ATTENTION_AND_FFN
    pretraining_class: str | None = None  # transformers class with an SSL pre-training head

    def geometry(self, config: PretrainedConfig) -> FrameGeometry:
        """Frame geometry of an encoder config of this family (its conv feature encoder)."""
        return conv_geometry(config.conv_kernel, config.conv_stride)

    def preset(self, name: str) -> dict[str, Any]:
        """The config fields of random-init preset ``name``; a clear error for an unknown one."""
        if name not in self.presets:
            raise FamilyError(f"model.preset={name!r} is unknown for {self.name}; choose one of "
                              f"{', '.join(self.presets)}")
        return dict(self.presets[name])


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("wav2vec2", pretraining_class="Wav2Vec2ForPreTraining"),
    Family("wav2vec2-conformer", pretraining_class="Wav2Vec2ConformerForPreTraining"),
    Family("hubert"),
    Family("wavlm"),
    Family("data2vec-audio"),
    Family("sew"),
    Family("sew-d"),
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
