"""Set-up before the first training step: the data checks plus the audio cache build, with the
cache taking the clips the checks decoded (wavtune's path) against decoding every clip twice.

Runs on FSDD's training rows (8 kHz WAV) read for a 16 kHz model (so both paths resample), and
on FLAC copies of the same clips (compressed audio, where decoding costs most). Each variant
runs in a fresh cache folder; the OS page cache is warmed first so disk reads do not decide.

    python benchmarks/preparation.py --manifest data/fsdd/train.jsonl

Results: ``benchmarks/results/preparation.json``. Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.append(str(ROOT / "benchmarks"))  # machine.py (after installed packages)
from machine import machine_info  # noqa: E402

from wavtune.checks.checker import check_utterances  # noqa: E402
from wavtune.checks.rows import CheckOptions  # noqa: E402
from wavtune.data import cache  # noqa: E402
from wavtune.data.cache import CacheSettings, build_cache  # noqa: E402
from wavtune.data.manifest import Utterance, read_manifest  # noqa: E402
from wavtune.data.spool import DecodedSpool  # noqa: E402


def one_pass(utts: list[Utterance], folder: Path, rate: int, spooled: bool) -> dict[str, Any]:
    """Seconds of the checks and of the cache build, and the clips the cache decoded."""
    spool = DecodedSpool(folder, rate) if spooled else None
    start = time.perf_counter()
    check_utterances(utts, CheckOptions(sample_rate=rate, geometry=None, need_text=False,
                                        on_decoded=spool.put if spool is not None else None),
                     progress=False)
    checks_s = time.perf_counter() - start
    start = time.perf_counter()
    build_cache(utts, CacheSettings(rate), folder, progress=False,
                decoder=spool.decoder(cache.decode) if spool is not None else None)
    cache_s = time.perf_counter() - start
    decoded = len(utts) - (spool.hits if spool is not None else 0)
    if spool is not None:
        spool.close()
    return {"checks_s": round(checks_s, 2), "cache_s": round(cache_s, 2),
            "total_s": round(checks_s + cache_s, 2), "cache_decoded_clips": decoded}


def flac_copies(utts: list[Utterance], folder: Path) -> list[Utterance]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for u in utts:
        wave, sr = sf.read(u.audio, dtype="float32")
        path = folder / f"{u.id}.flac"
        sf.write(path, wave, sr, format="FLAC")
        out.append(Utterance(u.id, path, u.text))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", type=Path, default=ROOT / "data" / "fsdd" /
                        "train.jsonl")
    parser.add_argument("--rate", type=int, default=16000, help="the model's sample rate (Hz)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" /
                        "preparation.json")
    args = parser.parse_args()
    wav = list(read_manifest(args.manifest))
    results: dict[str, Any] = {"machine": machine_info(), "rows": len(wav), "rate": args.rate,
                               "command": " ".join(["python", *sys.argv])}
    with tempfile.TemporaryDirectory(prefix="wavtune-setup-") as tmp:
        work = Path(tmp)
        for name, utts in (("wav", wav), ("flac", flac_copies(wav, work / "flac"))):
            for u in utts:  # warm the page cache: both variants read from memory
                u.audio.read_bytes()
            twice = one_pass(utts, work / f"{name}-twice", args.rate, spooled=False)
            once = one_pass(utts, work / f"{name}-once", args.rate, spooled=True)
            results[name] = {"decode_twice": twice, "decode_once": once,
                             "speedup": round(twice["total_s"] / once["total_s"], 3)}
            print(f"{name}: checks + cache {twice['total_s']:.1f} s decoding twice, "
                  f"{once['total_s']:.1f} s decoding once ({results[name]['speedup']:.2f}x)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
