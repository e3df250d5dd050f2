"""The one forward loop: its CTC loss uses the model's blank (pad_token_id), whatever its id."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from factories import write_corpus

from wavtune.config import Config, ModelConfig
from wavtune.data.dataset import AudioSettings, SpeechDataset
from wavtune.data.manifest import read_manifest, with_durations
from wavtune.data.text import TextNormalizer
from wavtune.data.vocab import Vocabulary
from wavtune.infer.evaluation import ctc_blank, evaluate
from wavtune.model.build import build_model
from wavtune.model.families import ModelError

TEXTS = ("abc", "cab", "bad", "dab")  # single words: no word delimiter in the targets


def _dataset(tmp_path: Path, vocab: Vocabulary) -> SpeechDataset:
    utts = with_durations(read_manifest(write_corpus(tmp_path, TEXTS)))
    return SpeechDataset(utts, AudioSettings(16_000, True), vocab, TextNormalizer())


@pytest.mark.parametrize("blank", [0, 2])  # 2: the word delimiter, absent from the targets
def test_eval_loss_is_the_models_own_ctc_loss_for_any_blank_id(tmp_path: Path, blank: int) -> None:
    vocab = Vocabulary.build(TEXTS)
    config = Config(model=ModelConfig(preset="tiny"))
    built = build_model(config, vocab, ())
    built.model.config.pad_token_id = blank  # e.g. a checkpoint whose blank is not id 0
    built.model.eval()
    dataset = _dataset(tmp_path, vocab)
    result = evaluate(built.model, dataset, batch_size=1, progress=False)
    assert result.ctc is not None
    own = []
    with torch.no_grad():
        for i, text in enumerate(TEXTS):
            wave = torch.from_numpy(dataset[i].input_values)[None]
            labels = torch.tensor([vocab.encode(text)])
            own.append(float(built.model(input_values=wave, labels=labels).loss))
    assert result.ctc.loss == pytest.approx(sum(own) / len(own), rel=1e-4)
    assert ctc_blank(built.model.config) == blank


def test_a_model_without_a_blank_id_is_a_clear_error(tmp_path: Path) -> None:
    vocab = Vocabulary.build(TEXTS)
    built = build_model(Config(model=ModelConfig(preset="tiny")), vocab, ())
    built.model.config.pad_token_id = None
    with pytest.raises(ModelError, match="config.pad_token_id is not set"):
        evaluate(built.model, _dataset(tmp_path, vocab), progress=False)

