"""Arrow tables of Hugging Face datasets: parquet and ``save_to_disk`` files, and their audio cells.

pyarrow is optional: it is imported where used, and its absence is a CorpusError that says how to
install it. An audio cell is a struct ``{bytes, path}`` (the ``datasets.Audio`` storage), a struct
``{array, sampling_rate}``, or a plain path string; :func:`write_audio_cell` turns it into a file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import soundfile as sf

from wavtune.corpora.base import SINGLE_SPLIT, CorpusError

ROWS_PER_BATCH = 256  # rows decoded at a time; bounds memory when audio bytes are in the table
KNOWN_SPLITS = ("train", "validation", "valid", "dev", "test", "eval", "other", "validated")
_UNSAFE = re.compile(r"[^\w.-]")  # characters not kept in written audio file names
_SHARD = re.compile(r"-\d+-of-\d+$")  # train-00000-of-00003
# Leading bytes of the audio containers libsndfile reads -> the file suffix to write them under.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"RIFF", ".wav"),
    (b"fLaC", ".flac"),
    (b"OggS", ".ogg"),
    (b"ID3", ".mp3"),
    (b"NIST_1A", ".sph"),
)


def require_pyarrow(what: str) -> ModuleType:
    """The pyarrow module, or a CorpusError saying that ``what`` needs it and how to install it."""
    try:
        import pyarrow
    except ImportError:
        raise CorpusError(
            f"{what} needs pyarrow, which is not installed; install it with: pip install pyarrow"
        ) from None
    module: ModuleType = pyarrow
    return module


def iter_rows(path: Path) -> Iterator[dict[str, Any]]:
    """The rows of a ``.parquet`` file or an Arrow IPC (stream or file) table, as dicts."""
    pa = require_pyarrow(f"reading {path}")
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(str(path)).iter_batches(batch_size=ROWS_PER_BATCH):
                yield from batch.to_pylist()
            return
        with pa.memory_map(str(path)) as source:
            try:
                reader = pa.ipc.open_stream(source)  # what datasets' save_to_disk writes
            except pa.ArrowInvalid:
                source.seek(0)
                reader = pa.ipc.open_file(source)
                for i in range(reader.num_record_batches):
                    yield from reader.get_batch(i).to_pylist()
                return
            for batch in reader:
                yield from batch.to_pylist()
    except (OSError, pa.ArrowException) as e:
        raise CorpusError(f"{path}: cannot read this Arrow/parquet table ({e})") from None


def count_rows(path: Path) -> int | None:
    """Rows in a parquet file, from its footer; None for Arrow files (not known without reading)."""
    if path.suffix != ".parquet":
        return None
    require_pyarrow(f"reading {path}")
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(str(path)).metadata.num_rows)


def parquet_split(path: Path) -> str:
    """The split a parquet file belongs to, from Hub naming: data/train-00000-of-00002.parquet,
    train/0000.parquet, test.parquet. SINGLE_SPLIT when the name says nothing."""
    name = _SHARD.sub("", path.stem)
    if name.lower() in KNOWN_SPLITS or name != path.stem:
        return name
    if path.parent.name.lower() in KNOWN_SPLITS or name.isdigit():
        return path.parent.name
    return SINGLE_SPLIT


def hf_features(path: Path) -> Mapping[str, Any]:
    """The ``features`` of a dataset_info.json (or a parquet file's huggingface metadata)."""
    try:
        if path.suffix == ".parquet":
            require_pyarrow(f"reading {path}")
            import pyarrow.parquet as pq

            meta = pq.ParquetFile(str(path)).schema_arrow.metadata or {}
            info = json.loads(meta.get(b"huggingface", b"{}")).get("info", {})
        else:
            info = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    features = info.get("features", {})
    return features if isinstance(features, dict) else {}


def class_names(features: Mapping[str, Any]) -> dict[str, list[str]]:
    """Column -> names of its classes, for the ``ClassLabel`` columns among ``features``."""
    return {
        column: [str(n) for n in spec["names"]]
        for column, spec in features.items()
        if isinstance(spec, dict) and spec.get("_type") == "ClassLabel" and spec.get("names")
    }


def audio_suffix(data: bytes, name: str | None) -> str:
    """The file suffix for encoded audio ``data``: from its leading bytes, else from ``name``."""
    for magic, suffix in _MAGIC:
        if data.startswith(magic):
            return suffix
    if len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0:  # MPEG frame sync
        return ".mp3"
    if name and Path(name).suffix:
        return Path(name).suffix.lower()
    return ".bin"


def audio_dest(out: Path, split: str, utt_id: str) -> Path:
    """Where the audio of ``utt_id`` is written (without suffix): ``out/audio/<split>/<id>``."""
    return out / "audio" / split / (_UNSAFE.sub("_", utt_id).lstrip(".") or "_")


def write_audio_cell(cell: Any, dest: Path, table: Path, row: int, base: Path) -> Path:
    """Turn an audio cell into a file: encoded bytes are written as they are to ``dest`` + suffix,
    a decoded array as a WAV; a cell that only names an existing file (absolute, or relative to
    ``base``) is used in place. ``table``/``row`` name the cell in errors."""
    where = f"{table} row {row}"
    if isinstance(cell, str):
        cell = {"path": cell}
    if not isinstance(cell, dict):
        raise CorpusError(
            f"{where}: the audio cell is a {type(cell).__name__}, not {{bytes, path}} or "
            f"{{array, sampling_rate}}; choose the audio column with audio_column (--audio-column)"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    data = cell.get("bytes")
    if data:
        target = dest.with_name(dest.name + audio_suffix(data, cell.get("path")))
        target.write_bytes(data)
        return target
    if cell.get("array") is not None and cell.get("sampling_rate"):
        target = dest.with_name(dest.name + ".wav")
        sf.write(
            str(target), np.asarray(cell["array"], dtype=np.float32), int(cell["sampling_rate"])
        )
        return target
    if cell.get("path"):
        source = Path(cell["path"])
        source = source if source.is_absolute() else base / source
        if source.is_file():
            return source.resolve()
        raise CorpusError(
            f"{where}: the audio cell has no bytes and names {source}, which does not exist; put "
            f"the audio files there, or re-save the dataset with its audio embedded (datasets' "
            f"save_to_disk and to_parquet embed it)"
        )
    raise CorpusError(f"{where}: the audio cell is empty (no bytes, array or path)")
