"""The ONNX graph of a run's model: what it returns, how it is traced and quantised, and its
forward pass in ONNX Runtime (the :class:`~wavtune.infer.forward.Forward` interface).

Inputs: the model's front-end input under its own name (``input_values`` ``[batch, samples]``,
or fbank ``input_features`` ``[batch, frames, 160]``) and ``attention_mask`` ``[batch, samples
or frames]`` int64 (batch and time dynamic). Outputs, named: a CTC head gives ``logits``
``[batch, frames, vocab]`` and ``frames`` ``[batch]`` (valid output frames per row); each label
head gives ``class_logits.<column>`` ``[batch, labels]`` (the manifest column it predicts, in
head order). A classification run has label outputs only; a multi-task run has both.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import PretrainedConfig

from wavtune.data.frontend import FrontEnd
from wavtune.infer.forward import ForwardOutput, split_outputs
from wavtune.model.build import ModelKind, model_kind

CTC_OUTPUTS = ("logits", "frames")
HEAD_PREFIX = "class_logits."  # + the head's manifest column


def output_names(has_ctc: bool, heads: Sequence[str]) -> list[str]:
    """The graph's outputs, in order, for a model with (or without) a CTC head and ``heads``.

    >>> output_names(True, ["speaker"])
    ['logits', 'frames', 'class_logits.speaker']
    """
    return [*(CTC_OUTPUTS if has_ctc else ()), *(HEAD_PREFIX + h for h in heads)]


class ExportGraph(torch.nn.Module):
    """Every head's scores (CTC logits and valid frame counts, then each label head's logits)
    from padded front-end inputs and their mask: what the ONNX graph computes."""

    def __init__(self, model: Any, front: FrontEnd) -> None:
        super().__init__()
        self.model = model
        self.front = front
        self.kind: ModelKind = model_kind(model)

    def forward(self, inputs: torch.Tensor, attention_mask: torch.Tensor
                ) -> tuple[torch.Tensor, ...]:
        out = self.model(**self.front.model_inputs(inputs, attention_mask))
        frame_logits, heads = split_outputs(self.kind, out)
        if frame_logits is None:
            return tuple(heads)
        frames = self.model._get_feat_extract_output_lengths(attention_mask.sum(-1))
        return frame_logits, frames.to(torch.int64), *heads


def export_graph(graph: ExportGraph, example: tuple[Any, Any], path: Path, opset: int,
                 outputs: Sequence[str]) -> None:
    """Trace ``graph`` on ``example`` (a padded batch) into ``path``, batch and time dynamic."""
    name = graph.front.input_name
    dynamic: dict[str, dict[int, str]] = {name: {0: "batch", 1: "time"},
                                          "attention_mask": {0: "batch", 1: "time"}}
    for out in outputs:
        dynamic[out] = {0: "batch", 1: "frames"} if out == "logits" else {0: "batch"}
    with warnings.catch_warnings():
        # the TorchScript exporter (needed: no onnxscript dependency) warns it is legacy, and
        # tracing warns about Python branches on shapes; the parity check tests the result
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, example, str(path), input_names=[name, "attention_mask"],
                          output_names=list(outputs), opset_version=opset, dynamo=False,
                          dynamic_axes=dynamic)


class OnnxForward:
    """An export's forward pass in an ONNX Runtime session; which heads it has is read from
    the graph's output names."""

    def __init__(self, session: Any, kind: ModelKind, config: PretrainedConfig) -> None:
        self.session = session
        self.kind = kind
        self.config = config
        self.outputs = [o.name for o in session.get_outputs()]
        self.inputs = {i.name for i in session.get_inputs()}  # an unused mask is traced away
        self.has_ctc = self.outputs[: len(CTC_OUTPUTS)] == list(CTC_OUTPUTS)

    def __call__(self, inputs: torch.Tensor, mask: torch.Tensor) -> ForwardOutput:
        feeds = {name: value.numpy() for name, value in
                 zip((self._input_name(), "attention_mask"), (inputs, mask))
                 if name in self.inputs}
        arrays = [torch.from_numpy(a) for a in self.session.run(self.outputs, feeds)]
        if self.has_ctc:
            return ForwardOutput(arrays[0].float(), arrays[1].long(),
                                 tuple(a.float() for a in arrays[2:]))
        return ForwardOutput(None, None, tuple(a.float() for a in arrays))

    def _input_name(self) -> str:
        """The main input: the graph's one input that is not the mask."""
        return str(next(i for i in sorted(self.inputs) if i != "attention_mask"))
