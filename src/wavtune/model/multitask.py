"""One encoder, a CTC head and classification heads: a transformers model with its own config.

``MultitaskConfig`` nests the encoder's own config (any wav2vec2-family ``model_type``), so the
run directory is a standard model folder. After :func:`register`, ``AutoConfig``, ``AutoModel``
and ``AutoModelForCTC`` load it (``.logits`` are the CTC scores); :func:`ctc_branch` turns the
encoder plus CTC head back into the stock ``*ForCTC`` model that needs no wavtune to load.

Loss: ``ctc_weight * CTC + sum_k weight_k * CE_k``; a row without a label for head k (target
-100) is left out of CE_k only.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForCTC, PreTrainedConfig, PreTrainedModel
from transformers.configuration_utils import SubConfigSpec
from transformers.utils.generic import ModelOutput

from wavtune.model.heads import ClassificationHead, masked_cross_entropy

MODEL_TYPE = "wavtune-multitask"


class MultitaskConfig(PreTrainedConfig):
    """``heads``: one dict per head: ``name`` (manifest column), ``labels`` (class names in id
    order), ``weight`` (loss weight) and ``class_weights`` (a list, or None)."""

    model_type = MODEL_TYPE
    sub_configs_defaults: ClassVar[dict[str, SubConfigSpec]] = {
        "encoder": SubConfigSpec(config_class=AutoConfig, model_type="wav2vec2")}

    encoder: PreTrainedConfig | dict[str, Any] | None = None
    vocab_size: int = 0  # CTC outputs; 0: no CTC head (a classifier with attentive pooling)
    pad_token_id: int = 0  # the CTC blank
    ctc_loss_reduction: str = "mean"
    ctc_zero_infinity: bool = True
    ctc_weight: float = 1.0
    heads: list[dict[str, Any]] | None = None
    pooling: str = "mean"  # mean | attentive
    use_weighted_layer_sum: bool = False  # heads read a learned mix of all hidden layers
    classifier_proj_size: int = 256
    final_dropout: float = 0.0

    @property
    def encoder_config(self) -> PreTrainedConfig:
        if not isinstance(self.encoder, PreTrainedConfig):  # __post_init__ builds it from a dict
            raise TypeError(f"{MODEL_TYPE} config has no encoder config")
        return self.encoder

    @property
    def head_names(self) -> tuple[str, ...]:
        return tuple(str(h["name"]) for h in self.heads or ())

    def head_labels(self, index: int) -> tuple[str, ...]:
        return tuple(str(x) for x in (self.heads or [])[index]["labels"])


@dataclass
class MultitaskOutput(ModelOutput):
    """``logits``: CTC scores ``[batch, frames, vocab]`` (None without a CTC head);
    ``head_logits``: one ``[batch, labels]`` tensor per head, in ``config.heads`` order."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    head_logits: tuple[torch.Tensor, ...] | None = None
    ctc_loss: torch.Tensor | None = None
    head_losses: tuple[torch.Tensor, ...] | None = None


class MultitaskModel(PreTrainedModel):
    """A wav2vec2-family encoder shared by a CTC head (``lm_head``) and classification ``heads``."""

    config_class = MultitaskConfig
    base_model_prefix = "multitask"
    main_input_name = "input_values"
    input_modalities = "audio"
    supports_gradient_checkpointing = True

    def __init__(self, config: MultitaskConfig) -> None:
        super().__init__(config)
        self.encoder = AutoModel.from_config(config.encoder)
        hidden = int(config.encoder_config.hidden_size)
        self.dropout = nn.Dropout(config.final_dropout)
        self.lm_head = nn.Linear(hidden, config.vocab_size) if config.vocab_size else None
        if config.use_weighted_layer_sum:
            layers = int(config.encoder_config.num_hidden_layers) + 1  # + the input embeddings
            self.layer_weights = nn.Parameter(torch.ones(layers) / layers)
        self.heads = nn.ModuleList(
            ClassificationHead(hidden, config.classifier_proj_size, len(head["labels"]),
                               config.pooling, config.final_dropout)  # type: ignore[arg-type]
            for head in config.heads or ()
        )
        self.post_init()  # type: ignore[no-untyped-call]

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif module is self and hasattr(self, "layer_weights"):
            nn.init.constant_(self.layer_weights, 1.0 / self.layer_weights.numel())

    # --- the encoder's helpers, as on the stock models ---------------------------------------
    def freeze_feature_encoder(self) -> None:
        """Stop training the convolutional feature encoder (as the stock models do)."""
        self.encoder.feature_extractor._freeze_parameters()

    def _get_feat_extract_output_lengths(self, input_lengths: torch.Tensor) -> torch.Tensor:
        lengths: torch.Tensor = self.encoder._get_feat_extract_output_lengths(input_lengths)
        return lengths

    def forward(
        self,
        input_values: torch.Tensor,  # [batch, samples]
        attention_mask: torch.Tensor | None = None,  # [batch, samples], 1 on real samples
        labels: torch.Tensor | None = None,  # [batch, max_label_len] CTC targets, -100 padded
        class_labels: torch.Tensor | None = None,  # [batch, heads], -100: no label for that head
        **kwargs: Any,
    ) -> MultitaskOutput:
        layers = self.config.use_weighted_layer_sum and len(self.heads) > 0
        out = self.encoder(input_values, attention_mask=attention_mask, output_hidden_states=layers)
        last = out.last_hidden_state  # [batch, frames, hidden]
        frame_mask = None
        if attention_mask is not None:
            frame_mask = self.encoder._get_feature_vector_attention_mask(
                last.shape[1], attention_mask
            )
        logits = self.lm_head(self.dropout(last)) if self.lm_head is not None else None
        pooled_from = last
        if layers:
            stacked = torch.stack(out.hidden_states, dim=1)  # [batch, layers, frames, hidden]
            mix = torch.softmax(self.layer_weights, dim=-1).view(-1, 1, 1)
            pooled_from = (stacked * mix).sum(dim=1)
        head_logits = tuple(head(pooled_from, frame_mask) for head in self.heads)

        ctc_loss = head_losses = loss = None
        if labels is not None and logits is not None:
            ctc_loss = self._ctc_loss(logits, labels, attention_mask)
            loss = self.config.ctc_weight * ctc_loss
        if class_labels is not None and self.heads:
            head_losses = tuple(
                masked_cross_entropy(head_logits[k], class_labels[:, k], self._class_weights(k))
                for k in range(len(self.heads))
            )
            weighted = sum(float(h.get("weight", 1.0)) * part
                           for h, part in zip(self.config.heads or (), head_losses))
            loss = weighted if loss is None else loss + weighted
        return MultitaskOutput(loss=loss, logits=logits, head_logits=head_logits,
                               ctc_loss=ctc_loss, head_losses=head_losses)

    def _class_weights(self, index: int) -> torch.Tensor | None:
        weights = (self.config.heads or [])[index].get("class_weights")
        if not weights:
            return None
        return torch.tensor(weights, dtype=torch.float32, device=self.device)

    def _ctc_loss(self, logits: torch.Tensor, labels: torch.Tensor,
                  attention_mask: torch.Tensor | None) -> torch.Tensor:
        """transformers' ``*ForCTC`` loss, unchanged (so the exported CTC branch trains alike)."""
        if attention_mask is None:  # unpadded input: every frame is real
            input_lengths = torch.full((logits.shape[0],), logits.shape[1], dtype=torch.long,
                                       device=logits.device)
        else:
            input_lengths = self._get_feat_extract_output_lengths(attention_mask.sum(-1)).long()
        mask = labels >= 0
        target_lengths = mask.sum(-1)
        targets = labels.masked_select(mask)
        log_probs = nn.functional.log_softmax(logits, dim=-1, dtype=torch.float32).transpose(0, 1)
        with torch.backends.cudnn.flags(enabled=False):
            loss: torch.Tensor = nn.functional.ctc_loss(
                log_probs, targets, input_lengths, target_lengths,
                blank=self.config.pad_token_id, reduction=self.config.ctc_loss_reduction,
                zero_infinity=self.config.ctc_zero_infinity,
            )
        return loss


_registered = False


def register() -> None:
    """Make ``AutoConfig``/``AutoModel``/``AutoModelForCTC`` load multi-task folders
    (idempotent)."""
    global _registered
    if _registered:
        return
    AutoConfig.register(MODEL_TYPE, MultitaskConfig, exist_ok=True)
    AutoModel.register(MultitaskConfig, MultitaskModel, exist_ok=True)
    AutoModelForCTC.register(MultitaskConfig, MultitaskModel, exist_ok=True)
    _registered = True


def ctc_branch(model: MultitaskModel) -> PreTrainedModel:
    """The encoder and CTC head as the stock ``*ForCTC`` model of the encoder's architecture."""
    if model.lm_head is None:
        raise ValueError("this multi-task model has no CTC head (vocab_size 0); nothing to export")
    config = copy.deepcopy(model.config.encoder_config)
    for name in ("vocab_size", "pad_token_id", "ctc_loss_reduction", "ctc_zero_infinity",
                 "final_dropout"):
        setattr(config, name, getattr(model.config, name))
    ctc: PreTrainedModel = AutoModelForCTC.from_config(config)
    getattr(ctc, ctc.base_model_prefix).load_state_dict(model.encoder.state_dict())
    ctc.lm_head.load_state_dict(model.lm_head.state_dict())
    ctc.eval()
    return ctc
