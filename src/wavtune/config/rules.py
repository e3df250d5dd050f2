"""Values that parse but cannot work together: rejected with the key and the fix, before any
work."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wavtune.config.schema import did_you_mean
from wavtune.config.sections import AugmentConfig, Config, ConfigError
from wavtune.tasks import has_label_heads, metric_choices

if TYPE_CHECKING:
    from wavtune.data.augment import AugmentOptions

def validate(config: Config) -> Config:
    """Reject impossible values (negative learning rate, zero batch sizes, ...)."""
    for ok, message in _range_rules(config):
        if not ok:
            raise ConfigError(message)
    _validate_task(config)
    _validate_model(config)
    _validate_cleaning(config)
    return config


def _validate_cleaning(config: Config) -> None:
    """``data.drop_misaligned`` needs a model to score the rows and ``on_error: skip``."""
    data = config.data
    if not data.drop_misaligned:
        return
    if not data.align_model:
        raise ConfigError("data.align_model: data.drop_misaligned needs a finished CTC run to "
                          "score the rows by forced alignment; set data.align_model=RUN (e.g. "
                          "a model trained on this data without it)")
    if data.on_error != "skip":
        raise ConfigError("data.drop_misaligned: drops rows, which data.on_error=fail forbids; "
                          "set data.on_error=skip (or list the rows with 'wavtune check-data "
                          "MANIFEST --align RUN' and fix them)")


def _range_rules(config: Config) -> list[tuple[bool, str]]:
    """(holds, message) for each value that must lie in a range or exclude another."""
    t = config.train
    return [
        (t.learning_rate > 0, f"train.learning_rate: must be > 0, got {t.learning_rate}"),
        (
            t.train_batch_size >= 1,
            f"train.train_batch_size: must be >= 1, got {t.train_batch_size}",
        ),
        (t.eval_batch_size >= 1, f"train.eval_batch_size: must be >= 1, got {t.eval_batch_size}"),
        (
            t.gradient_accumulation_steps >= 1,
            f"train.gradient_accumulation_steps: must be >= 1, got {t.gradient_accumulation_steps}",
        ),
        (0 <= t.adam_beta1 < 1 and 0 <= t.adam_beta2 < 1, "train.adam_beta1/2: must be in [0, 1)"),
        (t.adam_epsilon > 0, f"train.adam_epsilon: must be > 0, got {t.adam_epsilon}"),
        (t.warmup_steps >= 0, f"train.warmup_steps: must be >= 0, got {t.warmup_steps}"),
        (t.regularize_after_steps >= 0,
         f"train.regularize_after_steps: must be >= 0, got {t.regularize_after_steps}"),
        (t.num_epochs > 0 or t.max_steps > 0, "train.num_epochs or train.max_steps must be > 0"),
        (t.eval_steps >= 1, f"train.eval_steps: must be >= 1, got {t.eval_steps}"),
        (t.logging_steps >= 1, f"train.logging_steps: must be >= 1, got {t.logging_steps}"),
        (
            t.save_total_limit >= 1,
            f"train.save_total_limit: must be >= 1, got {t.save_total_limit}",
        ),
        (t.max_grad_norm >= 0, "train.max_grad_norm: must be >= 0 (0 disables clipping)"),
        (
            t.max_consecutive_nonfinite >= 1,
            f"train.max_consecutive_nonfinite: must be >= 1, got {t.max_consecutive_nonfinite}",
        ),
        (t.max_batch_seconds >= 0, "train.max_batch_seconds: must be >= 0 (0: batch by count)"),
        (t.max_batch_size >= 0, "train.max_batch_size: must be >= 0 (0: no cap)"),
        (t.compile_pad_s > 0, f"train.compile_pad_s: must be > 0 s, got {t.compile_pad_s}"),
        *_data_model_rules(config),
        *_pretrain_rules(config),
    ]


def _data_model_rules(config: Config) -> list[tuple[bool, str]]:
    """(holds, message) for the data and model sections' ranges and exclusions."""
    return [
        (config.data.num_workers >= 0, "data.num_workers: must be >= 0"),
        (config.data.prefetch_factor >= 1, "data.prefetch_factor: must be >= 1"),
        (config.train.num_threads >= 0, "train.num_threads: must be >= 0 (0: one per free core)"),
        (config.data.cache_threads >= 0, "data.cache_threads: must be >= 0 (0: one per core)"),
        (0.0 <= config.data.eval_from_train < 1.0, "data.eval_from_train: must be in [0, 1)"),
        (0.0 < config.data.train_fraction <= 1.0,
         f"data.train_fraction: must be in (0, 1], got {config.data.train_fraction}"),
        (
            not (config.data.eval and config.data.eval_from_train),
            "data.eval and data.eval_from_train are both set; keep one",
        ),
        (
            not (config.model.name_or_path and config.model.preset)
            and bool(config.model.name_or_path or config.model.preset or config.model.overrides),
            (
                "model: set exactly one of model.name_or_path (a Hub id or folder) or model.preset "
                "(random init, e.g. 'tiny'), optionally with model.overrides"
            ),
        ),
        (
            config.model.peft.method == "none" or config.model.freeze_encoder_steps == 0,
            "model.freeze_encoder_steps: PEFT keeps the encoder frozen throughout; set it to 0 "
            "with model.peft.method",
        ),
        (
            config.model.peft.r >= 1 and config.model.peft.adapter_attn_dim >= 1,
            "model.peft.r and model.peft.adapter_attn_dim: must be >= 1",
        ),
    ]


def _pretrain_rules(config: Config) -> list[tuple[bool, str]]:
    pre = config.pretrain
    return [
        (0.0 < pre.mask_time_prob <= 1.0,
         f"pretrain.mask_time_prob: must be in (0, 1], got {pre.mask_time_prob}"),
        (pre.mask_time_length >= 1,
         f"pretrain.mask_time_length: must be >= 1, got {pre.mask_time_length}"),
        (pre.num_clusters >= 2, f"pretrain.num_clusters: must be >= 2, got {pre.num_clusters}"),
        (pre.kmeans_sample_s > 0,
         f"pretrain.kmeans_sample_s: must be > 0 seconds, got {pre.kmeans_sample_s}"),
        (pre.unmasked_loss_weight >= 0,
         f"pretrain.unmasked_loss_weight: must be >= 0, got {pre.unmasked_loss_weight}"),
    ]


def _validate_model(config: Config) -> None:
    """Model and augmentation settings: sample rate only for random init, rates in [0, 1]."""
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
        given = config.train.metric_for_best
        raise ConfigError(f"train.metric_for_best: {given!r} is not available for task {task}"
                          f"{did_you_mean(given, choices)}; choose one of {', '.join(choices)}")


def augment_options(section: AugmentConfig) -> AugmentOptions:
    """The checked augmentation options of a config section."""
    from wavtune.data.augment import AugmentOptions

    for name in ("snr_db", "gain_db"):
        if len(getattr(section, name)) != 2:
            raise ValueError(f"augment.{name}: give [low, high], got {getattr(section, name)}")
    return AugmentOptions(section.speed_prob, tuple(section.speeds), section.noise_prob,
                          (section.snr_db[0], section.snr_db[1]), section.noise_dir,
                          section.gain_prob, (section.gain_db[0], section.gain_db[1]))


