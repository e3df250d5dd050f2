"""Dynamic int8 quantisation of an exported ONNX graph: the schemes it can follow (a registry
whose keys are ``ExportOptions.int8_scheme``'s and ``wavtune export --int8-scheme``'s choices)
and the quantisation itself (ONNX Runtime's tools, imported when used)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Int8Scheme:
    """How dynamic int8 quantisation (int8 weights, activations quantised at run time) treats
    the fp32 graph: ONNX Runtime's transformer fusions first (attention, skip layer norm, bias
    GELU: about four times fewer nodes) or not, which op types it quantises, per-channel or
    per-tensor weight scales, and 7-bit weights (``reduce_range``: no u8 x s8 saturation on CPUs
    without VNNI). With ``Conv`` in ``op_types`` the conv feature encoder is quantised too
    (ConvInteger); without it, it stays fp32."""

    fuse: bool = True
    op_types: tuple[str, ...] = ("MatMul", "Gemm", "Attention")
    per_channel: bool = False
    reduce_range: bool = True


# the schemes `benchmarks/inference.py --preset base` compares; keys are ExportOptions' choices
INT8_SCHEMES: dict[str, Int8Scheme] = {
    "fused": Int8Scheme(),
    "fused-per-channel": Int8Scheme(per_channel=True),
    "fused-conv": Int8Scheme(op_types=("MatMul", "Gemm", "Attention", "Conv")),
    "matmul": Int8Scheme(fuse=False, op_types=("MatMul",)),
    "matmul-per-channel": Int8Scheme(fuse=False, op_types=("MatMul",), per_channel=True),
}
DEFAULT_INT8_SCHEME = "fused"


def int8_scheme(name: str) -> Int8Scheme:
    """The scheme called ``name``, or ValueError listing the known ones."""
    if name not in INT8_SCHEMES:
        raise ValueError(f"unknown int8 scheme {name!r}; choose one of {sorted(INT8_SCHEMES)}")
    return INT8_SCHEMES[name]


def quantize_int8(fp32: Path, int8: Path, num_heads: int, hidden_size: int,
                  scheme: Int8Scheme = INT8_SCHEMES[DEFAULT_INT8_SCHEME]) -> None:
    """Dynamic int8 quantisation of ``fp32`` into ``int8`` as ``scheme`` says."""
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))  # both tools log every node they skip
    fused = int8.with_name(".fused-" + int8.name)
    try:
        source = fp32
        if scheme.fuse:
            optimize_model(str(fp32), model_type="bert", num_heads=num_heads,
                           hidden_size=hidden_size, opt_level=1).save_model_to_file(str(fused))
            source = fused
        quantize_dynamic(str(source), str(int8), weight_type=QuantType.QInt8,
                         reduce_range=scheme.reduce_range, per_channel=scheme.per_channel,
                         op_types_to_quantize=list(scheme.op_types),
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        root.setLevel(level)
        fused.unlink(missing_ok=True)
