"""One recipe per seed card: its hyperparameters equal the seed's, line for line.

The smoke test trains each recipe for its configured epochs with a tiny random-init model on two
to four tone clips (one optimizer step per epoch), renders the card and compares it with the
seed card: the hyperparameter block line for line, the sections in order, the table columns.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from factories import write_corpus
from rundirs import headings, hyperparameter_block, results_table, seed_card, table_columns

from wavtune.card.model_card import render_card
from wavtune.card.trainer_format import hyperparameter_lines
from wavtune.config import Config, load_config

RECIPES_DIR = Path(__file__).resolve().parents[1] / "recipes"
RECIPES = {
    0: "000_multitask_wav2vec2-large-a.yaml",
    1: "001_ascend_xls-r-300m.yaml",
    2: "002_commonvoice-en_xlsr-53.yaml",
    3: "003_timit_wav2vec2-base.yaml",
    4: "004_multitask-4class_xlsr-53.yaml",
}
BASE_MODELS = {0: "yongjian/wav2vec2-large-a", 1: "facebook/wav2vec2-xls-r-300m",
               2: "facebook/wav2vec2-large-xlsr-53", 3: "facebook/wav2vec2-base",
               4: "facebook/wav2vec2-large-xlsr-53"}
SEED_EVAL_EVERY = {0: 500, 2: 250, 3: 100, 4: 100}  # seed 001 evaluated once per epoch


def _recipe(seed: int, overrides: list[str] | None = None) -> Config:
    return load_config(RECIPES_DIR / RECIPES[seed], overrides)


def test_every_seed_has_a_recipe() -> None:
    assert sorted(p.name for p in RECIPES_DIR.glob("*.yaml")) == sorted(RECIPES.values())


@pytest.mark.parametrize("seed", sorted(RECIPES))
def test_recipe_reproduces_the_seed_setup(seed: int) -> None:
    config = _recipe(seed)
    assert hyperparameter_lines(config.train) == hyperparameter_block(seed_card(seed))
    assert config.model.name_or_path == BASE_MODELS[seed]
    assert f"# {config.card.model_name}\n" in seed_card(seed)
    if seed in SEED_EVAL_EVERY:
        assert (config.train.eval_strategy, config.train.eval_steps) == ("steps",
                                                                        SEED_EVAL_EVERY[seed])
    else:
        assert config.train.eval_strategy == "epoch"
    columns = table_columns(results_table(seed_card(seed)))
    assert ("Cer" in columns) == ("cer" in config.card.metrics)
    assert config.task == ("multitask" if seed in (0, 4) else "ctc")


def test_num_epochs_keeps_the_type_it_was_written_with() -> None:
    assert isinstance(_recipe(3).train.num_epochs, float)  # seed 003: 'num_epochs: 20.0'
    assert isinstance(_recipe(1).train.num_epochs, int)  # the others: 'num_epochs: 20'


def _smoke_data(folder: Path, seed: int) -> Path:
    if seed == 4:  # four classes, as the seed's 0-3; phones are the CTC targets
        texts = ["abc", "cab", "bad", "dab"]
        return write_corpus(folder, texts, extra={"phones": [" ".join(t) for t in texts],
                                                  "label": ["0", "1", "2", "3"]})
    if seed == 0:
        return write_corpus(folder, ["abc", "cab"], extra={"label": ["yes", "no"]})
    return write_corpus(folder, ["abc", "cab"])


def _smoke_overrides(tmp_path: Path, seed: int) -> list[str]:
    manifest = _smoke_data(tmp_path / "data", seed)
    return ["model.name_or_path=", "model.preset=tiny", f"data.train={manifest}",
            f"data.eval={manifest}", "data.test=", f"train.output_dir={tmp_path / 'run'}"]


@pytest.fixture
def one_thread() -> Iterator[None]:
    """A ~60k-parameter model trains several times faster on one thread when cores are shared."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("seed", sorted(RECIPES))
@pytest.mark.usefixtures("one_thread")
def test_recipe_smoke_run_writes_a_card_matching_the_seed(tmp_path: Path, seed: int) -> None:
    from wavtune.train.trainer import train

    config = _recipe(seed, _smoke_overrides(tmp_path, seed))
    result = train(config, progress=False)
    text = render_card(result.run_dir)
    seed_text = seed_card(seed)
    assert hyperparameter_block(text) == hyperparameter_block(seed_text)
    sections = [h for h in headings(seed_text) if not h.startswith("# ")]
    assert [h for h in headings(text) if h in sections] == sections  # the seed's, in order
    assert table_columns(results_table(text)) == table_columns(results_table(seed_text))
    assert f"# {config.card.model_name}\n" in text


EXAMPLES = sorted((RECIPES_DIR.parent / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_config_loads_and_builds_its_model(path: Path) -> None:
    """Each examples/*.yaml passes the config checks and its model builds (a typo in a key,
    an arch or an override fails here, not after a user has prepared the data)."""
    from wavtune.model.build import random_init_config

    config = load_config(path)
    assert config.data.train and config.train.output_dir
    # run folders are relative to the working directory (manifests to the config file): the
    # README runs these from the checkout's root, whose ignored runs/ holds them
    local = config.model.name_or_path.startswith((".", "runs"))  # not a Hub id
    for folder in (config.train.output_dir, config.model.name_or_path if local else ""):
        assert not folder or Path(folder).parts[0] == "runs", f"{path.name}: {folder}"
    if config.model.preset:  # the from-scratch recipes
        random_init_config(config.model, {"vocab_size": 12})
