"""A run's tuned decoding settings, ``RUN/decoding.json`` (written by ``wavtune lm tune``):
``transcribe``, ``evaluate`` and ``serve`` decode with them unless told otherwise."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from wavtune.decode.registry import decoder_entry
from wavtune.decode.settings import DecoderSettings, DecodingError, Hotword, TunedScores

DECODING_FILE = "decoding.json"


def save_decoding(run_dir: str | Path, settings: DecoderSettings,
                  scores: TunedScores | None = None) -> Path:
    """Write ``RUN/decoding.json``; an LM inside the run is stored relative to it."""
    run_dir = Path(run_dir)
    record: dict[str, Any] = asdict(settings)
    record["hotwords"] = [asdict(h) for h in settings.hotwords]
    if settings.lm:
        lm = Path(settings.lm).resolve()
        try:
            record["lm"] = str(lm.relative_to(run_dir.resolve()))
        except ValueError:
            record["lm"] = str(lm)
    if scores is not None:
        record["dev"] = asdict(scores)
    path = run_dir / DECODING_FILE
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_decoding(run_dir: str | Path) -> dict[str, Any] | None:
    """The raw ``RUN/decoding.json`` record, or None when the run has none."""
    path = Path(run_dir) / DECODING_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DecodingError(f"{path}: not valid JSON ({e}); delete it or rerun 'wavtune lm tune'"
                            ) from None
    if not isinstance(record, dict):
        raise DecodingError(f"{path}: expected a JSON object; rerun 'wavtune lm tune'")
    return record


def load_decoding(run_dir: str | Path) -> DecoderSettings | None:
    """The settings stored with a run (LM path resolved against the run), or None."""
    record = read_decoding(run_dir)
    if record is None:
        return None
    known = {f for f in DecoderSettings.__dataclass_fields__}
    values = {k: v for k, v in record.items() if k in known}
    values["hotwords"] = tuple(Hotword(**h) for h in values.get("hotwords", ()))
    lm = str(values.get("lm") or "")
    if lm and not Path(lm).is_absolute():
        values["lm"] = str(Path(run_dir) / lm)
    path = Path(run_dir) / DECODING_FILE
    decoder_entry(str(values.get("kind", "greedy")), f"{path}: decoder")
    try:
        return DecoderSettings(**values)
    except TypeError as e:
        raise DecodingError(f"{Path(run_dir) / DECODING_FILE}: {e}; rerun 'wavtune lm tune'"
                            ) from None
