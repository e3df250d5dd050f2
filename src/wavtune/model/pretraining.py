"""Building a self-supervised pre-training model: transformers' ``*ForPreTraining`` (wav2vec2's
contrastive objective: a Gumbel quantizer, a projection and the encoder) from scratch, from a
checkpoint (continued pre-training), or a checkpoint's architecture with fresh weights.

Only the families with a pre-training head in transformers (``Family.pretraining_class``) can be
pre-trained; any other gets an error naming those that can.
"""

from __future__ import annotations

import logging
from typing import Any, cast

import transformers
from transformers import AutoConfig, PretrainedConfig, PreTrainedModel

from wavtune.config import ModelConfig, PretrainConfig
from wavtune.constants import SAMPLE_RATE
from wavtune.model.build import (
    BuiltModel,
    cannot_load,
    default_feature_extractor,
    optional_fields,
    pretrained_feature_extractor,
    random_init_config,
    weight_format,
)
from wavtune.model.families import FamilyError, families_for_objective, family_of

log = logging.getLogger("wavtune")

# Config fields of the objective that a new codebook takes from the ``pretrain:`` section.
CODEBOOK_FIELDS = ("num_codevector_groups", "num_codevectors_per_group", "codevector_dim",
                   "proj_codevector_dim")
QUANTIZER_PREFIXES = ("quantizer.", "project_q.", "project_hid.")
# What a published folder's config says about SpecAugment: transformers' defaults (those of the
# released wav2vec2 checkpoints), not the pre-training masks, so fine-tuning masks lightly.
FINE_TUNING_MASKS = {"mask_time_prob": 0.05, "mask_time_length": 10}


def pretrainable_families() -> tuple[str, ...]:
    """The families the contrastive objective runs with (a transformers pre-training head)."""
    return families_for_objective("contrastive")


def pretraining_class(config: PretrainedConfig) -> type[PreTrainedModel]:
    """transformers' pre-training class of ``config``'s family, or an error naming the families
    that have one."""
    fam = family_of(config)
    if fam.pretraining_class is None:
        raise FamilyError(
            f"model family {fam.name!r} has no contrastive pre-training head in transformers; "
            f"pretrain.objective=contrastive runs with {', '.join(pretrainable_families())}. Set "
            f"model.arch (or a model.name_or_path) of one of those, or pretrain.objective=hubert "
            f"(masked prediction of MFCC clusters), which runs with "
            f"{', '.join(families_for_objective('hubert'))}")
    cls: type[PreTrainedModel] = getattr(transformers, fam.pretraining_class)
    return cls


def _objective_fields(pre: PretrainConfig, codebook: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {"num_negatives": pre.num_negatives,
                              "diversity_loss_weight": pre.diversity_loss_weight,
                              "mask_time_prob": pre.mask_time_prob,
                              "mask_time_length": pre.mask_time_length}
    if codebook:
        fields.update({k: getattr(pre, k) for k in CODEBOOK_FIELDS})
    return fields


def build_pretraining_model(cfg: ModelConfig, pre: PretrainConfig) -> BuiltModel:
    """The pre-training model ``cfg`` names: a checkpoint (its quantizer continues when it has
    one), its architecture with fresh weights (``random_init``) or a random-init preset. The
    hubert objective's model: :func:`wavtune.model.cluster_prediction.build_cluster_model`."""
    if pre.objective == "hubert":
        from wavtune.model.cluster_prediction import build_cluster_model

        return build_cluster_model(cfg, pre)
    if not cfg.name_or_path:
        config = random_init_config(cfg, {**optional_fields(cfg), **_objective_fields(pre, True)})
        model = pretraining_class(config)(config)
        fe = default_feature_extractor(config, cfg.sample_rate or SAMPLE_RATE)
        return BuiltModel(model, fe)
    try:
        config = AutoConfig.from_pretrained(cfg.name_or_path, **cfg.overrides,
                                            **optional_fields(cfg))
    except OSError as e:
        raise cannot_load(cfg, e) from None
    cls = pretraining_class(config)
    fe = pretrained_feature_extractor(cfg, config)
    if cfg.random_init:
        for key, value in _objective_fields(pre, True).items():
            setattr(config, key, value)
        return BuiltModel(cls(config), fe)
    for key, value in _objective_fields(pre, False).items():
        setattr(config, key, value)
    try:
        loaded = cls.from_pretrained(cfg.name_or_path, config=config,
                                     output_loading_info=True, **weight_format(cfg))
        model, info = cast(tuple[Any, dict[str, Any]], loaded)
    except OSError as e:
        raise cannot_load(cfg, e) from None
    fresh = [k for k in info.get("missing_keys", ()) if k.startswith(QUANTIZER_PREFIXES)]
    if fresh:
        log.warning("model.name_or_path=%s has no quantizer/projection weights (%d tensors, e.g. "
                    "%s): they start fresh, so the objective starts anew on a pre-trained encoder",
                    cfg.name_or_path, len(fresh), fresh[0])
    return BuiltModel(model, fe)


def set_fine_tuning_masks(config: PretrainedConfig, cfg: ModelConfig) -> None:
    """Put SpecAugment fields of ``config`` back to fine-tuning values (``cfg``'s when set, else
    :data:`FINE_TUNING_MASKS`): a pre-training config holds the objective's 65% masks, which
    ``wavtune train`` would otherwise apply as SpecAugment. Continued pre-training sets the
    objective's values again from the ``pretrain:`` section."""
    for key, default in FINE_TUNING_MASKS.items():
        value = getattr(cfg, key)
        setattr(config, key, default if value is None else value)
