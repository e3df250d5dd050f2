"""Building models: a pre-trained encoder with new heads, or a random-init config preset.

Every architecture with a ``*ForCTC`` class in transformers works (wav2vec2, wav2vec2-conformer,
HuBERT, WavLM, data2vec-audio, ...); transformers' Auto classes pick the class. Per task:

* ``ctc``: the stock ``*ForCTC`` model;
* ``classify``: the stock ``*ForSequenceClassification`` model (mean pooling over valid frames,
  optional weighted layer sum and projection size), or wavtune's multi-task model without a CTC
  head when ``heads.pooling`` is ``attentive``;
* ``multitask``: :class:`wavtune.model.multitask.MultitaskModel` (one encoder, CTC + label heads).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModel,
    AutoModelForAudioClassification,
    AutoModelForCTC,
    PretrainedConfig,
    PreTrainedModel,
    Wav2Vec2FeatureExtractor,
)

from wavtune.config import Config, HeadsConfig, ModelConfig
from wavtune.constants import SAMPLE_RATE
from wavtune.data.frontend import FrontEnd
from wavtune.data.labels import LabelSet
from wavtune.data.vocab import Vocabulary
from wavtune.model.families import (
    FAMILIES,
    Family,
    ModelError,
    families_for,
    family,
    family_of,
    front_end_of,
    geometry_of,
)
from wavtune.model.peft import Tuning, apply_peft
from wavtune.model.peft.adapter import build_fields

log = logging.getLogger("wavtune")

# ModelConfig fields copied onto the transformers config when set (None keeps the checkpoint's).
_OPTIONAL_FIELDS = (
    "mask_time_prob",
    "mask_time_length",
    "mask_feature_prob",
    "mask_feature_length",
    "layerdrop",
    "hidden_dropout",
    "attention_dropout",
    "activation_dropout",
    "feat_proj_dropout",
    "final_dropout",
)


# Parameter name prefixes of the heads (CTC, sequence classification, multi-task): what
# model.freeze_encoder_steps keeps training while the encoder is frozen.
HEAD_PREFIXES = ("lm_head", "projector", "classifier", "layer_weights", "heads.")

ModelKind = Literal["ctc", "classify", "multitask"]


@dataclass(frozen=True)
class BuiltModel:
    """A CTC model and the feature extractor that prepares its input."""

    model: PreTrainedModel
    feature_extractor: Wav2Vec2FeatureExtractor
    tuning: Tuning | None = None  # model.peft: what was applied (None: built without one)

    @property
    def sample_rate(self) -> int:
        return int(self.feature_extractor.sampling_rate)

    @property
    def samples_per_frame(self) -> int:
        """Input samples per output frame (product of the conv strides), e.g. 320."""
        return samples_per_frame(self.model.config)

    @property
    def uses_attention_mask(self) -> bool:
        return bool(self.feature_extractor.return_attention_mask)

    @property
    def front_end(self) -> FrontEnd:
        """How batches become this model's inputs (waveform or fbank; the family's)."""
        return front_end_of(self.model.config, self.feature_extractor)


def samples_per_frame(config: PretrainedConfig) -> int:
    """Input samples per output frame of any model wavtune builds, e.g. 320."""
    return geometry_of(config).samples_per_frame


def model_kind(model: torch.nn.Module) -> ModelKind:
    """Which head layout ``model`` has, by its class."""
    from wavtune.model.multitask import MultitaskModel

    if isinstance(model, MultitaskModel):
        return "multitask"
    if type(model).__name__.endswith("ForSequenceClassification"):
        return "classify"
    return "ctc"


def _head_fields(cfg: ModelConfig, vocab: Vocabulary) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "vocab_size": len(vocab),
        "pad_token_id": vocab.pad_id,
        "ctc_loss_reduction": cfg.ctc_loss_reduction,
        "ctc_zero_infinity": cfg.ctc_zero_infinity,
    }
    fields.update(optional_fields(cfg))
    return fields


def default_feature_extractor(config: PretrainedConfig, sample_rate: int = SAMPLE_RATE
                              ) -> Wav2Vec2FeatureExtractor:
    """The family's feature extractor for a model without a saved one (the registry's)."""
    fe: Wav2Vec2FeatureExtractor = family_of(config).default_feature_extractor(config, sample_rate)
    return fe


def build_ctc_model(cfg: ModelConfig, vocab: Vocabulary) -> BuiltModel:
    """A CTC model whose head matches ``vocab``: from a checkpoint or from a random-init config."""
    head = _head_fields(cfg, vocab)
    if cfg.name_or_path:  # the fine-tuning recipe's defaults, for the baseline too
        head = {**fine_tuning_fields(cfg, {**head, **cfg.overrides}), **head}
    if cfg.name_or_path and cfg.random_init:  # the same architecture, no pre-trained weights
        try:
            config = AutoConfig.from_pretrained(cfg.name_or_path, **head, **cfg.overrides,
                                                trust_remote_code=False)
        except OSError as e:
            raise cannot_load(cfg, e) from None
        model = AutoModelForCTC.from_config(config)
        return _finish(model, pretrained_feature_extractor(cfg, config), cfg)
    if cfg.name_or_path:
        try:
            model = AutoModelForCTC.from_pretrained(
                cfg.name_or_path, **head, **cfg.overrides, ignore_mismatched_sizes=True,
                **weight_format(cfg),
            )
        except OSError as e:
            raise cannot_load(cfg, e) from None
        try:
            feature_extractor = AutoFeatureExtractor.from_pretrained(cfg.name_or_path)
        except OSError:  # some encoder-only checkpoints ship no preprocessor_config.json
            feature_extractor = default_feature_extractor(model.config)
    else:
        config = random_init_config(cfg, head)
        model = AutoModelForCTC.from_config(config)
        feature_extractor = default_feature_extractor(config, cfg.sample_rate or SAMPLE_RATE)
    return _finish(model, feature_extractor, cfg)


def pretrained_family(cfg: ModelConfig) -> tuple[PretrainedConfig, Family | None]:
    """The config.json of the checkpoint ``cfg`` names (read alone, no remote code) and its
    registry family (None: a model type wavtune has no entry for, e.g. its multi-task model)."""
    try:
        config = AutoConfig.from_pretrained(cfg.name_or_path, trust_remote_code=False)
    except OSError as e:
        raise cannot_load(cfg, e) from None
    except ValueError as e:  # no model_type, or one transformers does not know
        raise ModelError(f"model.name_or_path={cfg.name_or_path!r}: {e}; wavtune trains the "
                         f"families {', '.join(FAMILIES)}") from None
    return config, FAMILIES.get(str(getattr(config, "model_type", "")))


def fine_tuning_fields(cfg: ModelConfig, explicit: Mapping[str, Any]) -> dict[str, Any]:
    """The family's fine-tuning recipe defaults for the pre-trained encoder ``cfg`` names (see
    ``Family.fine_tuning_defaults``), logged; the ``explicit`` fields are left as given."""
    config, known = pretrained_family(cfg)
    fields = known.fine_tuning_fields(config, set(explicit)) if known else {}
    if known and fields:
        log.info("%s: %s fine-tuning defaults %s (set model.overrides or the model.* field "
                 "to change them)", cfg.name_or_path, known.name,
                 ", ".join(f"{k}={v}" for k, v in fields.items()))
    return fields


def set_encoder_frozen(model: PreTrainedModel, frozen: bool, freeze_feature_encoder: bool) -> None:
    """Freeze everything but the CTC head (``frozen``), or only the conv feature encoder."""
    for name, param in model.named_parameters():
        if frozen:
            param.requires_grad = name.startswith(HEAD_PREFIXES)
        else:
            param.requires_grad = True
    if freeze_feature_encoder and not frozen and hasattr(model, "freeze_feature_encoder"):
        model.freeze_feature_encoder()  # type: ignore[operator]


def build_model(config: Config, vocab: Vocabulary | None,
                label_sets: Sequence[LabelSet] = ()) -> BuiltModel:
    """The model ``config.task`` calls for, heads sized to ``vocab`` and ``label_sets``."""
    check_task_of(config)
    if config.task == "ctc":
        if vocab is None:
            raise ModelError("task ctc needs a vocabulary")
        return build_ctc_model(config.model, vocab)
    if config.task == "classify" and config.heads.pooling == "mean":
        return build_classifier(config.model, config.heads, label_sets[0])
    return build_multitask_model(config.model, config.heads, vocab, label_sets)


def check_task_of(config: Config) -> None:
    """FamilyError before any weights load when the model's family (``model.arch``, or the
    ``model_type`` in a pre-trained folder's config) cannot train ``config.task``."""
    cfg = config.model
    if not cfg.name_or_path:
        family(cfg.arch).check_task(config.task)
        return
    known = pretrained_family(cfg)[1]  # config.json only: an unreadable one is a ModelError
    if known is not None:
        known.check_task(config.task)


def optional_fields(cfg: ModelConfig) -> dict[str, Any]:
    fields = {k: getattr(cfg, k) for k in _OPTIONAL_FIELDS if getattr(cfg, k) is not None}
    return {**fields, **build_fields(cfg.peft)}  # MMS adapter layers are built with the model


def random_init_config(cfg: ModelConfig, fields: dict[str, Any]) -> PretrainedConfig:
    preset = family(cfg.arch).preset(cfg.preset) if cfg.preset else {}
    try:
        config = AutoConfig.for_model(cfg.arch, **{**preset, **cfg.overrides, **fields})
    except ValueError as e:
        raise ModelError(f"model.arch={cfg.arch!r}: {e}") from None
    family(cfg.arch).check_config(config)
    return config


def weight_format(cfg: ModelConfig) -> dict[str, Any]:
    """``from_pretrained`` keywords: safetensors only, unless the config opts in to pickle
    (``model.allow_pickle_weights``, for checkpoints you trust); remote code never runs."""
    return {"use_safetensors": None if cfg.allow_pickle_weights else True,
            "trust_remote_code": False}


def cannot_load(cfg: ModelConfig, error: Exception) -> ModelError:
    folder = Path(cfg.name_or_path)
    if (not cfg.allow_pickle_weights and folder.is_dir() and not any(folder.glob("*.safetensors"))
            and any(folder.glob("*.bin"))):
        return ModelError(
            f"model.name_or_path={cfg.name_or_path!r}: the folder holds only pickle weights "
            "(*.bin), "
            f"which can run code when loaded; wavtune loads safetensors only. Convert them (load "
            f"and save_pretrained(..., safe_serialization=True)) or, for a checkpoint you trust, "
            f"set model.allow_pickle_weights=true"
        )
    return ModelError(
        f"model.name_or_path={cfg.name_or_path!r}: cannot load it ({error}). Give a local folder "
        f"with config.json and safetensors weights, or a Hub id that is in your cache when offline."
    )


def pretrained_feature_extractor(cfg: ModelConfig, config: PretrainedConfig
                                  ) -> Wav2Vec2FeatureExtractor:
    try:
        fe: Wav2Vec2FeatureExtractor = AutoFeatureExtractor.from_pretrained(cfg.name_or_path)
        return fe
    except OSError:  # some encoder-only checkpoints ship no preprocessor_config.json
        return default_feature_extractor(config)


def _finish(model: PreTrainedModel, fe: Wav2Vec2FeatureExtractor, cfg: ModelConfig) -> BuiltModel:
    family_of(model.config)  # a family wavtune knows how to feed, or a clear error now
    if model_kind(model) != "ctc":
        family_of(model.config).check_task(model_kind(model))
    if cfg.gradient_checkpointing:
        # transformers 5 renamed it; the old name still works but warns. Non-reentrant: the
        # reentrant form over a frozen feature encoder gives LoRA no gradient, silently
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    set_encoder_frozen(model, frozen=cfg.freeze_encoder_steps > 0,
                       freeze_feature_encoder=cfg.freeze_feature_encoder)
    return BuiltModel(model, fe, apply_peft(model, cfg.peft))


def build_classifier(cfg: ModelConfig, heads: HeadsConfig, labels: LabelSet) -> BuiltModel:
    """transformers' ``*ForSequenceClassification`` with ``labels`` as id2label/label2id."""
    fields: dict[str, Any] = {
        "num_labels": len(labels), "id2label": labels.id2label, "label2id": labels.label2id,
        "use_weighted_layer_sum": heads.use_weighted_layer_sum,
        "classifier_proj_size": heads.proj_size, **optional_fields(cfg),
    }
    try:
        if cfg.name_or_path and cfg.random_init:  # the same architecture, no pre-trained weights
            config = AutoConfig.from_pretrained(cfg.name_or_path, **fields, **cfg.overrides)
            model = AutoModelForAudioClassification.from_config(config)
            fe = pretrained_feature_extractor(cfg, config)
        elif cfg.name_or_path:
            model = AutoModelForAudioClassification.from_pretrained(
                cfg.name_or_path, **fields, **cfg.overrides, ignore_mismatched_sizes=True,
                **weight_format(cfg))
            fe = pretrained_feature_extractor(cfg, model.config)
        else:
            config = random_init_config(cfg, fields)
            model = AutoModelForAudioClassification.from_config(config)
            fe = default_feature_extractor(config, cfg.sample_rate or SAMPLE_RATE)
    except OSError as e:
        raise cannot_load(cfg, e) from None
    except ValueError as e:  # an architecture without a sequence-classification model
        raise ModelError(f"model: no audio classification model for this encoder ({e}); use "
                         f"one of {', '.join(families_for('classify'))}") from None
    return _finish(model, fe, cfg)


def build_multitask_model(cfg: ModelConfig, heads: HeadsConfig, vocab: Vocabulary | None,
                          label_sets: Sequence[LabelSet]) -> BuiltModel:
    """wavtune's multi-task model: one encoder, a CTC head (when ``vocab``), one head per label
    set."""
    from wavtune.model.multitask import MultitaskConfig, MultitaskModel, register

    register()
    encoder = None
    try:
        if cfg.name_or_path:
            enc_config = AutoConfig.from_pretrained(cfg.name_or_path, **optional_fields(cfg),
                                                    **cfg.overrides)
            if not cfg.random_init:  # random_init: the same architecture, fresh weights
                encoder = AutoModel.from_pretrained(cfg.name_or_path, config=enc_config,
                                                    **weight_format(cfg))
        else:
            enc_config = random_init_config(cfg, optional_fields(cfg))
    except OSError as e:
        raise cannot_load(cfg, e) from None
    config = MultitaskConfig(
        encoder=enc_config,
        vocab_size=len(vocab) if vocab is not None else 0,
        pad_token_id=vocab.pad_id if vocab is not None else 0,
        ctc_loss_reduction=cfg.ctc_loss_reduction, ctc_zero_infinity=cfg.ctc_zero_infinity,
        ctc_weight=heads.ctc_weight,
        heads=[{"name": s.column, "labels": list(s.labels),
                "weight": float(heads.weights.get(s.column, 1.0)),
                "class_weights": (list(s.balanced_weights()) if heads.class_weights == "balanced"
                                  else None)} for s in label_sets],
        pooling=heads.pooling, use_weighted_layer_sum=heads.use_weighted_layer_sum,
        classifier_proj_size=heads.proj_size,
        final_dropout=float(getattr(enc_config, "final_dropout", 0.0) or 0.0),
    )
    model = MultitaskModel(config)
    if encoder is not None:  # pre-trained weights, loaded after the new heads were initialised
        model.encoder.load_state_dict(encoder.state_dict())
    fe = (pretrained_feature_extractor(cfg, enc_config) if cfg.name_or_path
          else default_feature_extractor(enc_config, cfg.sample_rate or SAMPLE_RATE))
    return _finish(model, fe, cfg)


def count_parameters(model: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
