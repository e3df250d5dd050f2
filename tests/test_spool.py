"""The spool of clips the data checks decoded, which the audio cache takes instead of decoding
them again (wavtune.data.spool)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from factories import VARIED, write_corpus

from wavtune.checks.checker import check_utterances
from wavtune.checks.rows import CheckOptions
from wavtune.data.audio import Waveform, load_audio
from wavtune.data.cache import CacheSettings, build_cache
from wavtune.data.manifest import Utterance, read_manifest
from wavtune.data.spool import DecodedSpool


def test_the_checks_fill_a_spool_that_builds_the_same_cache_without_decoding(
        tmp_path: Path) -> None:
    utts = list(read_manifest(write_corpus(tmp_path / "corpus", VARIED)))  # 16 kHz files
    spool = DecodedSpool(tmp_path / "caches", 8000)
    report = check_utterances(utts, CheckOptions(sample_rate=8000, on_decoded=spool.put,
                                                 workers=2), progress=False)
    assert report.n_rows == len(utts) and len(spool) == len(utts)
    fallbacks: list[str] = []

    def decode(utt: Utterance, rate: int) -> Waveform:
        fallbacks.append(utt.id)
        return load_audio(utt.audio, rate, utt.offset_s, utt.duration_s)

    kept = utts[1:]  # a row the checks dropped is simply not asked for
    cache = build_cache(kept, CacheSettings(8000), tmp_path / "caches", progress=False,
                        decoder=spool.decoder(decode))
    assert fallbacks == [] and spool.hits == len(kept)
    for i, utt in enumerate(kept):  # bit-identical to decoding at the model's rate
        np.testing.assert_array_equal(cache[i], load_audio(utt.audio, 8000))
    other_rate = spool.decoder(decode)(utts[0], 16000)  # held at 8 kHz only: decoded
    assert fallbacks == [utts[0].id]
    np.testing.assert_array_equal(other_rate, load_audio(utts[0].audio, 16000))
    spool.close()
    assert not spool.folder.exists()
    spool.put(utts[0], np.ones(10, np.float32), 8000)  # after close: ignored, nothing written
    assert not spool.folder.exists() and spool.get(utts[0]) is None


def test_a_row_with_another_segment_of_the_same_file_is_not_mixed_up(tmp_path: Path) -> None:
    utt = read_manifest(write_corpus(tmp_path / "corpus", VARIED[:1]))[0]
    spool = DecodedSpool(tmp_path, 16000)
    spool.put(utt, load_audio(utt.audio, 16000), 16000)
    later = Utterance(utt.id, utt.audio, utt.text, offset_s=0.1)
    assert spool.get(later) is None and spool.get(utt) is not None
    spool.close()
