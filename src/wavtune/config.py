"""Typed configuration: dataclass sections, YAML load/dump and ``--set section.key=value`` overrides.

Only this module reads YAML. Unknown keys, wrong types and impossible values are rejected before any
work starts, with the key's dotted path.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union

import yaml

from wavtune import constants as C
from wavtune.tasks import Task, has_label_heads, metric_choices
from wavtune.text import TextNormalizer, Unit

if TYPE_CHECKING:
    from wavtune.augment import AugmentOptions

Scheduler = Literal["linear", "cosine", "constant", "tri_stage"]
Precision = Literal["no", "fp16", "bf16"]
EvalStrategy = Literal["steps", "epoch"]
OnError = Literal["fail", "skip"]


class ConfigError(ValueError):
    """A configuration value is unknown, mistyped or impossible; the message names its key."""


@dataclass(frozen=True)
class DataConfig:
    """Which manifests to read and how strictly."""

    train: str = ""  # training manifest (JSONL/CSV/TSV); relative paths are from the config file
    eval: str = ""  # validation manifest, scored during training to pick the best checkpoint
    test: str = ""  # optional test manifest, scored once at the end with the published model
    eval_from_train: float = 0.0  # no eval manifest: hold out this seeded share of train instead
    text_column: str = "text"  # manifest column holding the transcript (e.g. 'phones' for TIMIT)
    # task classify: the one column to predict; multitask: one classification head per column
    label_columns: list[str] = field(default_factory=list)
    on_error: OnError = "fail"  # bad rows: stop with a report ('fail') or drop and count them ('skip')
    min_duration_s: float = 0.0
    max_duration_s: float = 0.0  # 0: no limit
    num_workers: int = 0  # DataLoader worker processes (0: load in the training process)
    prefetch_factor: int = 2  # batches each worker loads ahead (num_workers > 0)
    persistent_workers: bool = False  # keep workers across epochs (not with augmentation)
    pin_memory: bool | None = None  # page-locked batches for faster GPU copies; None: on a GPU
    audio_cache: bool = True  # decode + resample each clip once into a cache, read it afterwards
    cache_dir: str = ""  # caches keyed by rows + settings; empty: RUN/audio-cache (per run)
    cache_threads: int = 0  # decode threads building a cache (0: one per core, at most 8)
    allow_outside_paths: bool = True  # false: audio must lie in the manifest's folder tree


@dataclass(frozen=True)
class TextConfig:
    """Transcript normalisation and token units (see wavtune.text.TextNormalizer)."""

    unit: Unit = "char"
    nfkc: bool = True
    lowercase: bool = True
    remove: str = ""  # characters to delete, e.g. ',.?!;:"'
    remove_regex: str = ""
    allowed: str = ""  # when set, the only characters kept

    def normalizer(self) -> TextNormalizer:
        return TextNormalizer(self.nfkc, self.lowercase, self.remove, self.remove_regex,
                              self.allowed, self.unit)


@dataclass(frozen=True)
class ModelConfig:
    """The encoder and its CTC head. ``None`` keeps the checkpoint's own value."""

    name_or_path: str = ""  # Hub id or local folder; empty: random init from `preset` + `overrides`
    preset: str = ""  # named random-init size (wavtune.modeling.PRESETS), e.g. 'tiny', 'small'
    arch: str = "wav2vec2"  # model_type for random init: wav2vec2, hubert, wavlm, data2vec-audio, ...
    sample_rate: int = 0  # random init only: the model's input rate in Hz (0: 16000, as pre-trained)
    overrides: dict[str, Any] = field(default_factory=dict)  # extra transformers config fields
    freeze_feature_encoder: bool = True
    freeze_encoder_steps: int = 0  # train only the head for the first N optimizer steps
    mask_time_prob: float | None = None  # SpecAugment
    mask_time_length: int | None = None
    mask_feature_prob: float | None = None
    mask_feature_length: int | None = None
    layerdrop: float | None = None
    hidden_dropout: float | None = None
    attention_dropout: float | None = None
    activation_dropout: float | None = None
    feat_proj_dropout: float | None = None
    final_dropout: float | None = None
    gradient_checkpointing: bool = False
    ctc_zero_infinity: bool = True
    ctc_loss_reduction: Literal["mean", "sum"] = "mean"
    allow_pickle_weights: bool = False  # true: also load *.bin (pickle) weights; trusted files only


@dataclass(frozen=True)
class AugmentConfig:
    """On-the-fly augmentation of the training split (see wavtune.augment); off by default."""

    speed_prob: float = 0.0  # chance of speed perturbation per clip
    speeds: list[float] = field(default_factory=lambda: [0.9, 1.1])
    noise_prob: float = 0.0  # chance of additive noise per clip
    snr_db: list[float] = field(default_factory=lambda: [10.0, 30.0])  # [low, high]
    noise_dir: str = ""  # folder of noise recordings; empty: generated white/pink noise
    gain_prob: float = 0.0
    gain_db: list[float] = field(default_factory=lambda: [-6.0, 6.0])  # [low, high]


@dataclass(frozen=True)
class HeadsConfig:
    """Classification heads (task classify or multitask) and the multi-task loss weights."""

    pooling: Literal["mean", "attentive"] = "mean"  # over valid frames; attentive: learned weights
    use_weighted_layer_sum: bool = False  # pool a learned mix of all hidden layers, not the last
    proj_size: int = 256  # frames are projected to this size before pooling (classifier_proj_size)
    class_weights: Literal["none", "balanced"] = "none"  # balanced: inverse training frequency
    ctc_weight: float = 1.0  # multitask loss: ctc_weight * CTC + sum of weights[column] * CE
    weights: dict[str, float] = field(default_factory=dict)  # per label column; missing: 1.0


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, evaluation and checkpointing; names follow the seed model cards."""

    output_dir: str = "runs/wavtune"
    overwrite_output_dir: bool = False
    learning_rate: float = C.DEFAULT_LEARNING_RATE
    train_batch_size: int = C.DEFAULT_BATCH_SIZE
    eval_batch_size: int = C.DEFAULT_BATCH_SIZE
    gradient_accumulation_steps: int = 1
    seed: int = C.DEFAULT_SEED
    adam_beta1: float = C.DEFAULT_ADAM_BETAS[0]
    adam_beta2: float = C.DEFAULT_ADAM_BETAS[1]
    adam_epsilon: float = C.DEFAULT_ADAM_EPSILON
    weight_decay: float = 0.0
    lr_scheduler_type: Scheduler = "linear"
    warmup_steps: int = C.DEFAULT_WARMUP_STEPS
    tri_stage_hold_ratio: float = 0.4  # tri_stage: share of steps at peak LR after warm-up
    tri_stage_final_lr_scale: float = 0.05
    # an int or a float, kept as written: the model card prints it as given ('20' vs '20.0')
    num_epochs: int | float = 1.0
    max_steps: int = 0  # > 0: stop after this many optimizer steps, whatever num_epochs says
    mixed_precision: Precision = "no"
    eval_strategy: EvalStrategy = "epoch"
    eval_steps: int = 500
    logging_steps: int = 50
    save_total_limit: int = 2  # checkpoints kept besides the best one
    metric_for_best: str = C.DEFAULT_METRIC  # wer, cer, loss; accuracy, macro_f1, speaker_accuracy...
    max_grad_norm: float = C.DEFAULT_MAX_GRAD_NORM
    # stop with a diagnosis after this many optimizer steps in a row skipped for NaN/inf
    max_consecutive_nonfinite: int = C.DEFAULT_MAX_CONSECUTIVE_NONFINITE
    max_batch_seconds: float = 0.0  # > 0: batches by total audio duration instead of batch size
    max_batch_size: int = 0  # with max_batch_seconds: at most this many clips a batch (0: no cap)
    device: Literal["auto", "cpu", "cuda"] = "auto"


@dataclass(frozen=True)
class CardConfig:
    """Facts for the model card that the run cannot know; wavtune.card renders the rest."""

    model_name: str = ""  # card title and model-index name; empty: the run directory's name
    license: str = "apache-2.0"  # a Hub license id
    language: list[str] = field(default_factory=list)  # ISO 639-1 codes, e.g. [zh, en]
    dataset: str = ""  # Hub dataset id (front matter `datasets`, model-index); empty: not on the Hub
    dataset_name: str = ""  # pretty name, e.g. 'TIMIT'; empty: the training manifest's folder name
    dataset_config: str = ""  # e.g. 'en' for Common Voice English
    tags: list[str] = field(default_factory=list)  # besides task, architecture and 'wavtune'
    metrics: list[str] = field(default_factory=list)  # reported: wer, cer, accuracy, ...; empty: all
    description: str = ""  # free text for 'Model description'
    intended_uses: str = ""  # free text for 'Intended uses & limitations'


@dataclass(frozen=True)
class Config:
    """A whole run. Saved resolved as ``config.yaml`` in the run directory."""

    task: Task = "ctc"
    data: DataConfig = field(default_factory=DataConfig)
    text: TextConfig = field(default_factory=TextConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    heads: HeadsConfig = field(default_factory=HeadsConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    card: CardConfig = field(default_factory=CardConfig)


# --- building dataclasses from plain data, with type checks -----------------------------------

def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        # the value's own type first, so `int | float` keeps 20 an int and 20.0 a float
        for arg in sorted(args, key=lambda a: a is not type(value)):
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{key}: invalid value {value!r}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value is False and "no" in choices:  # YAML 1.1 reads a bare `no` as false
            return "no"
        if value not in choices:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(repr, choices))}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, e.g. [0.9, 1.1], got {value!r}")
        (item_type,) = typing.get_args(tp) or (Any,)
        return [_coerce(v, item_type, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a section (mapping), got {value!r}")
        return from_dict(tp, value, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads '1e-4' as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    if tp is Any:
        return value
    raise ConfigError(f"{key}: unsupported type {_type_name(tp)}")  # pragma: no cover


def from_dict(cls: type[Any], data: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types raise ConfigError."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            raise ConfigError(f"{path}: unknown key; valid keys here are: {', '.join(names)}")
        kwargs[key] = _coerce(value, hints[key], path)
    return cls(**kwargs)


def to_dict(config: Any) -> dict[str, Any]:
    """Plain-data form of a config dataclass (for YAML, JSON and checkpoints)."""
    return dataclasses.asdict(config)


def _field_type(dotted: str) -> Any:
    """The declared type of the config field at ``dotted``, or None when there is none."""
    tp: Any = Config
    for part in dotted.split("."):
        if not (dataclasses.is_dataclass(tp) and isinstance(tp, type)):
            return None
        tp = typing.get_type_hints(tp).get(part)
    return tp


def _is_text(tp: Any) -> bool:
    return tp is str or (typing.get_origin(tp) is Literal
                         and all(isinstance(c, str) for c in typing.get_args(tp)))


def _set(tree: dict[str, Any], dotted: str, raw: str) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: '{part}' is a value, not a section")
        node = child
    value: Any = raw
    # A text field takes the value verbatim unless quoted: YAML would turn text.remove=| or =-
    # into '' or a list, train.mixed_precision=no into false, text.allowed=01234567 into a number.
    quoted = raw.strip()[:1] in ("'", '"')
    try:
        if raw != "" and (quoted or not _is_text(_field_type(dotted))):
            value = yaml.safe_load(raw)
    except yaml.YAMLError:  # e.g. text.remove=,.?! is not a YAML scalar: take it verbatim
        value = raw
    node[parts[-1]] = value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings (values parsed as YAML scalars) to plain config data."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. train.learning_rate=1e-4")
        key, raw = item.split("=", 1)
        _set(data, key.strip(), raw)
    return data


def validate(config: Config) -> Config:
    """Reject impossible values (negative learning rate, zero batch sizes, ...)."""
    t = config.train
    rules: list[tuple[bool, str]] = [
        (t.learning_rate > 0, f"train.learning_rate: must be > 0, got {t.learning_rate}"),
        (t.train_batch_size >= 1, f"train.train_batch_size: must be >= 1, got {t.train_batch_size}"),
        (t.eval_batch_size >= 1, f"train.eval_batch_size: must be >= 1, got {t.eval_batch_size}"),
        (t.gradient_accumulation_steps >= 1,
         f"train.gradient_accumulation_steps: must be >= 1, got {t.gradient_accumulation_steps}"),
        (0 <= t.adam_beta1 < 1 and 0 <= t.adam_beta2 < 1, "train.adam_beta1/2: must be in [0, 1)"),
        (t.adam_epsilon > 0, f"train.adam_epsilon: must be > 0, got {t.adam_epsilon}"),
        (t.warmup_steps >= 0, f"train.warmup_steps: must be >= 0, got {t.warmup_steps}"),
        (t.num_epochs > 0 or t.max_steps > 0, "train.num_epochs or train.max_steps must be > 0"),
        (t.eval_steps >= 1, f"train.eval_steps: must be >= 1, got {t.eval_steps}"),
        (t.logging_steps >= 1, f"train.logging_steps: must be >= 1, got {t.logging_steps}"),
        (t.save_total_limit >= 1, f"train.save_total_limit: must be >= 1, got {t.save_total_limit}"),
        (t.max_grad_norm >= 0, "train.max_grad_norm: must be >= 0 (0 disables clipping)"),
        (t.max_consecutive_nonfinite >= 1,
         f"train.max_consecutive_nonfinite: must be >= 1, got {t.max_consecutive_nonfinite}"),
        (config.data.num_workers >= 0, "data.num_workers: must be >= 0"),
        (config.data.prefetch_factor >= 1, "data.prefetch_factor: must be >= 1"),
        (config.data.cache_threads >= 0, "data.cache_threads: must be >= 0 (0: one per core)"),
        (t.max_batch_seconds >= 0, "train.max_batch_seconds: must be >= 0 (0: batch by count)"),
        (t.max_batch_size >= 0, "train.max_batch_size: must be >= 0 (0: no cap)"),
        (0.0 <= config.data.eval_from_train < 1.0, "data.eval_from_train: must be in [0, 1)"),
        (not (config.data.eval and config.data.eval_from_train),
         "data.eval and data.eval_from_train are both set; keep one"),
        (not (config.model.name_or_path and config.model.preset)
         and bool(config.model.name_or_path or config.model.preset or config.model.overrides),
         ("model: set exactly one of model.name_or_path (a Hub id or folder) or model.preset "
          "(random init, e.g. 'tiny'), optionally with model.overrides")),
    ]
    for ok, message in rules:
        if not ok:
            raise ConfigError(message)
    _validate_task(config)
    if config.model.sample_rate and config.model.name_or_path:
        raise ConfigError("model.sample_rate: only for random init; a pre-trained model keeps the "
                          "rate it was trained at (audio is resampled to it)")
    if config.model.sample_rate < 0:
        raise ConfigError(f"model.sample_rate: must be > 0 Hz, got {config.model.sample_rate}")
    try:
        augment_options(config.augment)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    for name in ("mask_time_prob", "mask_feature_prob", "layerdrop", "hidden_dropout",
                 "attention_dropout", "activation_dropout", "feat_proj_dropout", "final_dropout"):
        value = getattr(config.model, name)
        if value is not None and not 0.0 <= value <= 1.0:
            raise ConfigError(f"model.{name}: must be within [0, 1], got {value}")
    return config


def _validate_task(config: Config) -> None:
    """Label columns and head settings fit the task; metric_for_best is one the task logs."""
    task, columns, heads = config.task, config.data.label_columns, config.heads
    if task == "classify" and len(columns) != 1:
        raise ConfigError(f"data.label_columns: task classify predicts one column, e.g. [digit]; "
                          f"got {columns} (several columns: task multitask)")
    if task == "multitask" and not columns:
        raise ConfigError("data.label_columns: task multitask needs at least one label column "
                          "for a classification head, e.g. [speaker]")
    if not has_label_heads(task) and columns:
        raise ConfigError(f"data.label_columns is {columns} but task is {task!r}; set task: "
                          f"classify or multitask to train classification heads")
    for column in columns:
        if column in ("id", "audio", "offset", "duration", config.data.text_column):
            raise ConfigError(f"data.label_columns: {column!r} is not a label column")
    if len(set(columns)) != len(columns):
        raise ConfigError(f"data.label_columns: {columns} names a column twice")
    for column, weight in heads.weights.items():
        if column not in columns:
            raise ConfigError(f"heads.weights.{column}: not one of data.label_columns {columns}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise ConfigError(f"heads.weights.{column}: must be a number >= 0, got {weight!r}")
    if heads.ctc_weight < 0:
        raise ConfigError(f"heads.ctc_weight: must be >= 0, got {heads.ctc_weight}")
    if heads.proj_size < 1:
        raise ConfigError(f"heads.proj_size: must be >= 1, got {heads.proj_size}")
    choices = metric_choices(task, columns)
    if config.train.metric_for_best not in choices:
        raise ConfigError(f"train.metric_for_best: {config.train.metric_for_best!r} is not "
                          f"available for task {task}; choose one of {', '.join(choices)}")


def augment_options(section: AugmentConfig) -> AugmentOptions:
    """The checked augmentation options of a config section."""
    from wavtune.augment import AugmentOptions

    for name in ("snr_db", "gain_db"):
        if len(getattr(section, name)) != 2:
            raise ValueError(f"augment.{name}: give [low, high], got {getattr(section, name)}")
    return AugmentOptions(section.speed_prob, tuple(section.speeds), section.noise_prob,
                          (section.snr_db[0], section.snr_db[1]), section.noise_dir,
                          section.gain_prob, (section.gain_db[0], section.gain_db[1]))


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    section = data.get("data")
    if isinstance(section, dict):
        for key in ("train", "eval", "test", "cache_dir"):
            value = section.get(key)
            if isinstance(value, str) and value and not Path(value).is_absolute():
                section[key] = str((base / value).resolve())


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (manifest paths resolved against its folder), apply overrides, validate."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({e})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        data = loaded or {}
        _resolve_paths(data, path.parent)
    data = apply_overrides(data, overrides or [])
    # --set paths are from the working directory; absolute, the saved config still finds them
    _resolve_paths(data, Path.cwd())
    return validate(from_dict(Config, data))


def dump_config(config: Config, path: str | Path) -> None:
    """Write the resolved config as YAML."""
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False, allow_unicode=True),
                          encoding="utf-8")
