"""The decoder registry: names map to factories, and an unknown name is a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from wavtune.data.vocab import Vocabulary
from wavtune.decode.base import CTCDecoder
from wavtune.decode.greedy import GreedyDecoder
from wavtune.decode.registry import DECODERS, decoder_names, make_decoder
from wavtune.decode.runfile import DECODING_FILE, load_decoding
from wavtune.decode.settings import DecoderSettings, DecodingError


def _vocab() -> Vocabulary:
    return Vocabulary.build(["ab ba"])


def test_every_registered_decoder_builds_and_decodes() -> None:
    vocab = _vocab()
    logits = np.full((6, len(vocab)), -5.0, dtype=np.float32)
    a = vocab.encode("a")[0]
    logits[[0, 1], a] = 5.0
    logits[2:, vocab.pad_id] = 5.0
    pytest.importorskip("flashlight.lib.text.decoder")
    for name in decoder_names():
        decoder: CTCDecoder = make_decoder(vocab, DecoderSettings(kind=name))
        assert decoder.decode(logits).text == "a", name
    assert isinstance(make_decoder(vocab, DecoderSettings()), GreedyDecoder)
    assert set(DECODERS) == {"greedy", "beam"}


def test_an_unknown_decoder_names_the_choices() -> None:
    with pytest.raises(DecodingError, match=r"decoder 'viterbi': unknown; use greedy or beam"):
        make_decoder(_vocab(), DecoderSettings(kind="viterbi"))


def test_an_unknown_decoder_in_decoding_json_names_the_file(tmp_path: Path) -> None:
    (tmp_path / DECODING_FILE).write_text(json.dumps({"kind": "viterbi"}), encoding="utf-8")
    with pytest.raises(DecodingError, match=rf"{DECODING_FILE}: decoder 'viterbi': unknown"):
        load_decoding(tmp_path)
