"""The model-family registry: presets build for every family, and its frame geometry is the
model's own (the CTC-feasibility check and timestamps rely on it)."""

from __future__ import annotations

import pytest
import torch

from wavtune.config import Config, ModelConfig
from wavtune.data.vocab import Vocabulary
from wavtune.model.build import build_model
from wavtune.model.families import FAMILIES, FamilyError, ModelError, family, geometry_of


@pytest.mark.parametrize("arch", sorted(FAMILIES))
def test_geometry_matches_the_models_output_lengths(arch: str) -> None:
    vocab = Vocabulary.build(["ab"])
    built = build_model(Config(model=ModelConfig(preset="tiny", arch=arch)), vocab)
    geometry = geometry_of(built.model.config)
    samples = torch.tensor([399, 400, 719, 720, 16_000, 16_321])
    frames = built.model._get_feat_extract_output_lengths(samples)
    assert [geometry.frames(int(n)) for n in samples] == [max(0, int(f)) for f in frames]


def test_unknown_family_and_preset_name_the_choices() -> None:
    with pytest.raises(FamilyError, match=r"model.arch='whisper': not a family wavtune trains"):
        family("whisper")
    with pytest.raises(FamilyError, match=r"model.preset='huge' is unknown for wav2vec2; "
                                          r"choose one of tiny, small, base"):
        family("wav2vec2").preset("huge")
    with pytest.raises((FamilyError, ModelError)):
        build_model(Config(model=ModelConfig(preset="huge")), Vocabulary.build(["ab"]))
