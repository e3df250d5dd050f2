"""Typed configuration: YAML, --set overrides, validation (wavtune.config)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from wavtune.config import (
    Config,
    ConfigError,
    ModelConfig,
    TextConfig,
    apply_overrides,
    dump_config,
    from_dict,
    load_config,
    to_dict,
    validate,
)
from wavtune.data.text import TextNormalizer

TINY = ["model.preset=tiny"]  # every valid config needs a model


def _yaml(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data), "utf-8")
    return path


# --- YAML -------------------------------------------------------------------------------------


def test_yaml_manifest_paths_resolve_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = _yaml(tmp_path / "recipes" / "run.yaml", {
        "data": {"train": "data/train.jsonl", "eval": "../shared/dev.jsonl",
                 "test": str(tmp_path / "abs" / "test.jsonl")},
        "model": {"preset": "tiny"},
    })
    config = load_config(Path("recipes/run.yaml"))
    assert config.data.train == str(tmp_path / "recipes" / "data" / "train.jsonl")
    assert config.data.eval == str(tmp_path / "shared" / "dev.jsonl")
    assert config.data.test == str(tmp_path / "abs" / "test.jsonl")
    assert path.is_file()


def test_override_paths_are_from_the_working_directory(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _yaml(
        tmp_path / "recipes" / "run.yaml",
        {"data": {"train": "a.jsonl"}, "model": {"preset": "tiny"}},
    )
    config = load_config(tmp_path / "recipes" / "run.yaml", ["data.train=mine/train.jsonl"])
    assert config.data.train == str(tmp_path / "mine" / "train.jsonl")


def test_yaml_values_are_typed_into_sections(tmp_path: Path) -> None:
    path = _yaml(tmp_path / "c.yaml", {
        "text": {"unit": "cjk", "remove": ",.", "lowercase": False},
        "model": {"preset": "tiny", "overrides": {"num_hidden_layers": 2}, "layerdrop": 0.1},
        "train": {"learning_rate": "3e-4", "train_batch_size": 4.0, "num_epochs": 3},
    })
    config = load_config(path)
    assert config.text == TextConfig(unit="cjk", remove=",.", lowercase=False)
    assert config.model.overrides == {"num_hidden_layers": 2}
    assert config.train.learning_rate == 3e-4  # YAML 1.1 reads 3e-4 as a string
    assert config.train.train_batch_size == 4 and isinstance(config.train.train_batch_size, int)
    assert config.train.num_epochs == 3 and isinstance(config.train.num_epochs, int)  # as written


def test_yaml_bare_no_is_the_precision_no(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model: {preset: tiny}\ntrain:\n  mixed_precision: no\n", "utf-8")
    assert load_config(path).train.mixed_precision == "no"


def test_empty_yaml_is_all_defaults_plus_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("", "utf-8")
    assert load_config(path, TINY) == Config(model=ModelConfig(preset="tiny"))


@pytest.mark.parametrize(("content", "match"), [
    ("train: [1, 2\n", "not valid YAML"),
    ("- a\n- b\n", "top level must be a mapping"),
    ("train: 3\n", "train: expected a section"),
])
def test_bad_yaml_files(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(content, "utf-8")
    with pytest.raises(ConfigError, match=match):
        load_config(path, TINY)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "none.yaml")


# --- --set overrides --------------------------------------------------------------------------


def test_overrides_are_dotted_and_typed() -> None:
    config = load_config(None, [
        "model.preset=tiny", "train.learning_rate=1e-4", "train.train_batch_size=16",
        "model.freeze_feature_encoder=false", "model.mask_time_prob=0.05", "text.unit=phone",
        "model.overrides.num_hidden_layers=3", "train.max_steps=2.0",
    ])
    assert config.train.learning_rate == 1e-4
    assert config.train.train_batch_size == 16
    assert config.model.freeze_feature_encoder is False
    assert config.model.mask_time_prob == 0.05
    assert config.text.unit == "phone"
    assert config.model.overrides == {"num_hidden_layers": 3}
    assert config.train.max_steps == 2


def test_later_overrides_win_and_beat_the_yaml(tmp_path: Path) -> None:
    path = _yaml(tmp_path / "c.yaml", {"train": {"seed": 1}, "model": {"preset": "tiny"}})
    assert load_config(path, ["train.seed=2", "train.seed=3"]).train.seed == 3


def test_yaml_null_clears_an_optional_value() -> None:
    config = load_config(None, [*TINY, "model.layerdrop=0.1", "model.layerdrop=null"])
    assert config.model.layerdrop is None


def test_flow_mapping_override() -> None:
    config = load_config(None, [*TINY, "model.overrides={hidden_size: 32, num_attention_heads: 2}"])
    assert config.model.overrides == {"hidden_size": 32, "num_attention_heads": 2}


@pytest.mark.parametrize(
    "raw",
    [
        ",.?!",
        ".,?!",
        "?!.,",
        ',.?!;:"',
        "'",
        "|",
        ">",
        "-",
        "#",
        "?",
        "[]",
        "{}",
        "- .",
        "&",
        "a: b",
        "01234567",
        ".5",
        "yes",
        "null",
    ],
)
def test_text_overrides_are_taken_verbatim(raw: str) -> None:
    config = load_config(None, [*TINY, f"text.remove={raw}", f"text.allowed={raw}"])
    assert config.text.remove == raw
    assert config.text.allowed == raw


def test_quoted_text_overrides_are_unquoted() -> None:
    config = load_config(None, [*TINY, 'text.remove=",. "', "data.text_column='phones'"])
    assert config.text.remove == ",. "
    assert config.data.text_column == "phones"


def test_empty_override_is_the_empty_string() -> None:
    assert load_config(None, [*TINY, "text.remove=,", "text.remove="]).text.remove == ""


def test_choice_overrides_named_like_yaml_booleans() -> None:
    assert load_config(None, [*TINY, "train.mixed_precision=no"]).train.mixed_precision == "no"


def test_override_normaliser_matches_the_settings() -> None:
    config = load_config(None, [*TINY, "text.remove=,.?!", "text.lowercase=false"])
    assert config.text.normalizer() == TextNormalizer(lowercase=False, remove=",.?!")
    assert config.text.normalizer()("Hi, YOU!") == "Hi YOU"


def test_override_without_equals_sign() -> None:
    with pytest.raises(ConfigError, match="expected section.key=value"):
        load_config(None, ["train.learning_rate"])


def test_override_into_a_value_is_an_error() -> None:
    with pytest.raises(ConfigError, match="'train' is a value, not a section"):
        apply_overrides({"train": 3}, ["train.seed=1"])


def test_apply_overrides_changes_plain_data() -> None:
    assert apply_overrides({"train": {"seed": 1}}, ["train.seed=2", "text.unit=cjk"]) == {
        "train": {"seed": 2}, "text": {"unit": "cjk"}}


# --- errors name the dotted key ---------------------------------------------------------------


def test_unknown_key_names_the_dotted_path_and_lists_valid_keys() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, [*TINY, "train.learnig_rate=1e-4"])
    message = str(info.value)
    assert message.startswith("train.learnig_rate: unknown key (did you mean learning_rate?)")
    valid = [f.name for f in dataclasses.fields(Config().train)]
    assert all(name in message for name in valid)


def test_unknown_section_lists_the_sections() -> None:
    sections = ", ".join(f.name for f in dataclasses.fields(Config))  # task, data, ..., train, card
    with pytest.raises(
        ConfigError, match=rf"^decode: unknown key; valid keys here are: {sections}$"
    ):
        load_config(None, [*TINY, "decode.beam=4"])


@pytest.mark.parametrize(("override", "suggestion"), [
    ("train.lr_scheduler_type=cosin", "(did you mean cosine?)"),
    ("train.metric_for_best=wre", "(did you mean wer?)"),
    ("moddel.arch=hubert", "moddel: unknown key (did you mean model?)"),
])
def test_a_near_miss_gets_the_nearest_valid_name(override: str, suggestion: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, [*TINY, override])
    assert suggestion in str(info.value)


def test_unknown_key_in_yaml(tmp_path: Path) -> None:
    path = _yaml(tmp_path / "c.yaml", {"data": {"trian": "x.jsonl"}})
    with pytest.raises(ConfigError, match=r"^data\.trian: unknown key \(did you mean train\?\); "
                                          r"valid keys here are: train, "):
        load_config(path)


@pytest.mark.parametrize(("override", "match"), [
    ("train.train_batch_size=abc", "train.train_batch_size: expected an integer, got 'abc'"),
    ("train.train_batch_size=2.5", "train.train_batch_size: expected an integer, got 2.5"),
    ("train.train_batch_size=true", "train.train_batch_size: expected an integer, got True"),
    ("train.learning_rate=fast", "train.learning_rate: expected a number, got 'fast'"),
    ("train.learning_rate=true", "train.learning_rate: expected a number"),
    ("model.freeze_feature_encoder=maybe", "model.freeze_feature_encoder: expected true or false"),
    ("model.freeze_feature_encoder=1", "model.freeze_feature_encoder: expected true or false"),
    ("text.unit=word", "text.unit: 'word' is not one of 'char', 'phone', 'cjk'"),
    ("train.lr_scheduler_type=step", "train.lr_scheduler_type: 'step' is not one of"),
    ("model.overrides=3", "model.overrides: expected a mapping"),
    ("model.mask_time_prob=often", "model.mask_time_prob: expected a number"),
    ("task=asr", "task: 'asr' is not one of 'ctc'"),
])
def test_wrong_types_name_the_key(override: str, match: str) -> None:
    with pytest.raises(ConfigError, match="^" + match.replace(".", r"\.").replace("(", r"\(")):
        load_config(None, [*TINY, override])


# --- impossible values ------------------------------------------------------------------------


@pytest.mark.parametrize(("overrides", "match"), [
    (["train.learning_rate=-1e-4"], "train.learning_rate: must be > 0"),
    (["train.learning_rate=0"], "train.learning_rate: must be > 0"),
    (["train.eval_batch_size=0"], "train.eval_batch_size: must be >= 1"),
    (["train.train_batch_size=0"], "train.train_batch_size: must be >= 1"),
    (["train.gradient_accumulation_steps=0"], "train.gradient_accumulation_steps"),
    (["train.adam_beta1=1.0"], "train.adam_beta1/2"),
    (["train.warmup_steps=-1"], "train.warmup_steps"),
    (["train.num_epochs=0"], "train.num_epochs or train.max_steps"),
    (["train.metric_for_best=bleu"], "train.metric_for_best: 'bleu'"),
    (["data.eval_from_train=1.0"], "data.eval_from_train"),
    (["data.eval=x.jsonl", "data.eval_from_train=0.1"], "both set"),
    (["data.train_fraction=0"], r"data.train_fraction: must be in \(0, 1\]"),
    (["data.train_fraction=1.5"], "data.train_fraction"),
    (["model.layerdrop=2"], r"model.layerdrop: must be within \[0, 1\], got 2"),
    (["model.mask_time_prob=-0.1"], "model.mask_time_prob"),
    (["model.name_or_path=facebook/wav2vec2-base"], "exactly one of"),
    (["model.preset="], "exactly one of"),
])
def test_impossible_values_are_rejected(overrides: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(None, [*TINY, *overrides])


def test_num_epochs_zero_is_fine_with_max_steps() -> None:
    assert (
        load_config(None, [*TINY, "train.num_epochs=0", "train.max_steps=10"]).train.max_steps == 10
    )


@pytest.mark.parametrize("extra", [[], ["model.overrides={hidden_size: 32}"]])
def test_name_or_path_and_preset_together_are_rejected(extra: list[str]) -> None:
    with pytest.raises(ConfigError, match="exactly one of"):
        load_config(None, [*TINY, "model.name_or_path=some/model", *extra])


def test_model_from_overrides_alone_is_accepted() -> None:
    config = load_config(None, ["model.overrides={hidden_size: 32}"])
    assert (config.model.preset, config.model.name_or_path) == ("", "")


def test_validate_returns_the_config() -> None:
    config = Config(model=ModelConfig(name_or_path="x"))
    assert validate(config) is config


# --- dump / load ------------------------------------------------------------------------------


def test_dump_load_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(None, [
        "model.preset=tiny", "data.train=data/train.jsonl", "data.eval=/abs/dev.jsonl",
        "text.remove=,.?!\"'|", "text.unit=cjk", "text.allowed=01234567",
        "model.overrides={hidden_size: 32}", "model.layerdrop=0.05", "train.learning_rate=3e-4",
        "train.mixed_precision=no", "train.lr_scheduler_type=tri_stage",
    ])
    path = tmp_path / "run" / "config.yaml"
    path.parent.mkdir()
    dump_config(config, path)
    assert load_config(path) == config
    assert from_dict(Config, yaml.safe_load(path.read_text("utf-8"))) == config
    assert config.data.train == str(tmp_path / "data" / "train.jsonl")


def test_to_dict_from_dict_round_trip_of_defaults() -> None:
    assert from_dict(Config, to_dict(Config())) == Config()
