"""What machine a benchmark ran on, for its JSON: figures from different CPUs (AVX2 only, AVX-512,
AMX) or GPUs differ by whole factors, so every result file records which one made it."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

# the CPU flags that decide which kernels torch and onnxruntime can use
VECTOR_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile",
                "amx_bf16", "amx_int8", "asimd", "sve")


def cpu_model() -> tuple[str, list[str]]:
    """(CPU model name, the vector extensions of VECTOR_FLAGS it has) from /proc/cpuinfo."""
    name, flags = platform.processor() or platform.machine(), set[str]()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and value.strip():
                name = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    return name, [f for f in VECTOR_FLAGS if f in flags]


def load_1min() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def machine_info() -> dict[str, Any]:
    """CPU model and vector extensions, cores, load, torch version and threads, GPU if any."""
    import torch

    name, vector = cpu_model()
    info: dict[str, Any] = {
        "cpu": name, "vector_extensions": vector, "cpus": os.cpu_count(),
        "load_1min_at_start": load_1min(), "python": platform.python_version(),
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = {"name": props.name, "memory_gb": round(props.total_memory / 2**30, 1),
                       "count": torch.cuda.device_count(),
                       "bf16": bool(torch.cuda.is_bf16_supported())}
    return info


if __name__ == "__main__":
    import json

    print(json.dumps(machine_info(), indent=2))
