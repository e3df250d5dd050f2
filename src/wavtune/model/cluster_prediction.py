"""The model of HuBERT-style pre-training: a family's base model (``HubertModel``,
``Wav2Vec2Model``, ``WavLMModel``, ...) and a linear projection of each output frame to logits
over the k-means clusters of MFCC frames (``config.num_clusters``).

The class is built per family as a subclass of the family's ``*PreTrainedModel``, with the base
model under the family's ``base_model_prefix``: the saved folder is then a transformers model
folder whose encoder weights ``HubertModel.from_pretrained`` and ``HubertForCTC.from_pretrained``
(``wavtune train``) load as they are; ``cluster_head.*`` is the only extra tensor, which
continued pre-training loads back. Masking is the base model's own: ``mask_time_indices``
replaces the masked frames by its learnt ``masked_spec_embed``.
"""

from __future__ import annotations

import logging
from typing import Any, cast

import torch
from torch import nn
from transformers import AutoConfig, PretrainedConfig, PreTrainedModel
from transformers.models.auto.modeling_auto import MODEL_MAPPING

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

HEAD_PREFIX = "cluster_head."
_CLASSES: dict[type[PreTrainedModel], type[PreTrainedModel]] = {}


class ClusterPrediction(nn.Module):
    """The methods of every ``*ForClusterPrediction`` class (mixed into the family's
    ``*PreTrainedModel`` by :func:`cluster_prediction_class`)."""

    encoder_class: type[PreTrainedModel]
    base_model_prefix: str

    def __init__(self, config: PretrainedConfig) -> None:
        super().__init__(config)  # the family's PreTrainedModel
        setattr(self, self.base_model_prefix, self.encoder_class(config))
        self.cluster_head = nn.Linear(config.hidden_size, int(config.num_clusters))
        cast(Any, self).post_init()

    @property
    def encoder(self) -> Any:
        return getattr(self, self.base_model_prefix)

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None,
                mask_time_indices: torch.Tensor | None = None) -> torch.Tensor:
        """Cluster logits [batch, frames, clusters]; masked frames (bool [batch, frames]) are
        replaced by the encoder's mask embedding before its transformer."""
        out = self.encoder(input_values, attention_mask=attention_mask,
                           mask_time_indices=mask_time_indices)
        logits: torch.Tensor = self.cluster_head(out.last_hidden_state)
        return logits


def cluster_prediction_class(config: PretrainedConfig) -> type[PreTrainedModel]:
    """The ``*ForClusterPrediction`` class of ``config``'s family, or an error naming the
    families the hubert objective runs with."""
    fam = family_of(config)
    if "hubert" not in fam.pretrain_objectives or type(config) not in MODEL_MAPPING:
        raise FamilyError(
            f"model family {fam.name!r} cannot be pre-trained with pretrain.objective=hubert "
            f"(it reads {fam.input_kind}s, the MFCC targets are cut from waveforms); it runs "
            f"with {', '.join(families_for_objective('hubert'))}. Set model.arch (or a "
            f"model.name_or_path) of one of those")
    encoder = cast(type[PreTrainedModel], MODEL_MAPPING[type(config)])
    if encoder not in _CLASSES:
        parent = encoder.__mro__[1]  # the family's *PreTrainedModel (weight init, lengths)
        name = encoder.__name__.removesuffix("Model") + "ForClusterPrediction"
        _CLASSES[encoder] = type(name, (ClusterPrediction, parent),
                                 {"encoder_class": encoder, "__module__": __name__})
    return _CLASSES[encoder]


def _objective_fields(pre: PretrainConfig) -> dict[str, Any]:
    return {"mask_time_prob": pre.mask_time_prob, "mask_time_length": pre.mask_time_length,
            "apply_spec_augment": True}  # the masked frames read masked_spec_embed


def build_cluster_model(cfg: ModelConfig, pre: PretrainConfig) -> BuiltModel:
    """The hubert objective's model ``cfg`` names: a random-init preset, a checkpoint's
    architecture with fresh weights (``random_init``), or a checkpoint (continued pre-training;
    its cluster head continues when it has one, with the checkpoint's number of clusters)."""
    fields = {**_objective_fields(pre), "num_clusters": pre.num_clusters}
    if not cfg.name_or_path:
        config = random_init_config(cfg, {**optional_fields(cfg), **fields})
        model = cluster_prediction_class(config)(config)
        return BuiltModel(model, default_feature_extractor(config, cfg.sample_rate or SAMPLE_RATE))
    try:
        config = AutoConfig.from_pretrained(cfg.name_or_path, **cfg.overrides,
                                            **optional_fields(cfg))
    except OSError as e:
        raise cannot_load(cfg, e) from None
    cls = cluster_prediction_class(config)
    fe = pretrained_feature_extractor(cfg, config)
    continued = not cfg.random_init and hasattr(config, "num_clusters")
    for key, value in (_objective_fields(pre) if continued else fields).items():
        setattr(config, key, value)
    if cfg.random_init:
        return BuiltModel(cls(config), fe)
    try:
        loaded = cls.from_pretrained(cfg.name_or_path, config=config, output_loading_info=True,
                                     **weight_format(cfg))
        model, info = cast(tuple[Any, dict[str, Any]], loaded)
    except OSError as e:
        raise cannot_load(cfg, e) from None
    if any(k.startswith(HEAD_PREFIX) for k in info.get("missing_keys", ())):
        log.warning("model.name_or_path=%s has no cluster head: a fresh one over %d clusters "
                    "starts on its encoder", cfg.name_or_path, config.num_clusters)
    elif config.num_clusters != pre.num_clusters:
        log.info("model.name_or_path=%s predicts %d clusters; its head and codebook continue "
                 "(pretrain.num_clusters=%d applies to a new codebook only)", cfg.name_or_path,
                 config.num_clusters, pre.num_clusters)
    return BuiltModel(model, fe)
