"""The config's sections as frozen dataclasses: every key a YAML config or ``--set`` can name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from wavtune import constants as C
from wavtune.data.text import TextNormalizer, Unit
from wavtune.errors import WavtuneError
from wavtune.tasks import Task

Scheduler = Literal["linear", "cosine", "constant", "tri_stage"]
Precision = Literal["no", "fp16", "bf16"]
EvalStrategy = Literal["steps", "epoch"]
OnError = Literal["fail", "skip"]
Tracker = Literal["tensorboard", "wandb", "mlflow"]


class ConfigError(WavtuneError, ValueError):
    """A configuration value is unknown, mistyped or impossible; the message names its key."""


@dataclass(frozen=True)
class DataConfig:
    """Which manifests to read and how strictly."""

    train: str = ""  # training manifest (JSONL/CSV/TSV); relative paths are from the config file
    eval: str = ""  # validation manifest, scored during training to pick the best checkpoint
    test: str = ""  # optional test manifest, scored once at the end with the published model
    eval_from_train: float = 0.0  # no eval manifest: hold out this seeded share of train instead
    # < 1: keep only this seeded share of the training rows, stratified by speaker (a label
    # budget); drawn before eval_from_train, so a held-out eval set comes out of the same share
    train_fraction: float = 1.0
    text_column: str = "text"  # manifest column holding the transcript (e.g. 'phones' for TIMIT)
    # task classify: the one column to predict; multitask: one classification head per column
    label_columns: list[str] = field(default_factory=list)
    on_error: OnError = (
        "fail"  # bad rows: stop with a report ('fail') or drop and count them ('skip')
    )
    min_duration_s: float = 0.0
    max_duration_s: float = 0.0  # 0: no limit
    num_workers: int = 0  # DataLoader worker processes (0: load in the training process)
    prefetch_factor: int = 2  # batches each worker loads ahead (num_workers > 0)
    persistent_workers: bool = False  # keep workers across epochs (not with augmentation)
    pin_memory: bool | None = None  # page-locked batches for faster GPU copies; None: on a GPU
    audio_cache: bool = True  # decode + resample each clip once into a cache, read it afterwards
    cache_dir: str = ""  # caches keyed by rows + settings; empty: RUN/audio-cache (per run)
    cache_threads: int = 0  # decode threads building a cache (0: one per core, at most 8)
    # fbank families: each clip's input_features computed once into a cache beside the audio's
    feature_cache: bool = True
    allow_outside_paths: bool = True  # false: audio must lie in the manifest's folder tree
    # with on_error skip: drop the train and eval rows that align_model's forced alignment flags
    # as mislabelled (check-data --align's rule), counted as 'misaligned' in metrics.json
    drop_misaligned: bool = False
    align_model: str = ""  # the finished CTC run that scores the rows (drop_misaligned)


@dataclass(frozen=True)
class TextConfig:
    """Transcript normalisation and token units (see wavtune.data.text.TextNormalizer)."""

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
class PeftConfig:
    """Parameter-efficient fine-tuning (wavtune.model.peft): LoRA via peft, or MMS adapters."""

    method: Literal["none", "lora", "adapter"] = "none"  # none: every weight trains
    r: int = 8  # lora: rank of the update matrices
    alpha: int = 16  # lora: scaling (alpha / r)
    dropout: float = 0.0  # lora: dropout on the LoRA branch
    target_modules: list[str] = field(default_factory=list)  # lora; empty: the family's defaults
    bias: Literal["none", "all", "lora_only"] = "none"  # lora: which biases train
    adapter_attn_dim: int = 16  # adapter: bottleneck size of transformers' MMS adapter layers
    adapter_name: str = "default"  # adapter: e.g. a language code; adapter.<name>.safetensors


@dataclass(frozen=True)
class ModelConfig:
    """The encoder and its CTC head. ``None`` keeps the checkpoint's own value."""

    name_or_path: str = ""  # Hub id or local folder; empty: random init from `preset` + `overrides`
    preset: str = ""
    arch: str = "wav2vec2"
    sample_rate: int = (
        0  # random init only: the model's input rate in Hz (0: 16000, as pre-trained)
    )
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
    random_init: bool = False  # true: name_or_path's architecture with fresh weights (the baseline)
    peft: PeftConfig = field(default_factory=PeftConfig)  # LoRA / adapters instead of full tuning


@dataclass(frozen=True)
class AugmentConfig:
    """On-the-fly augmentation of the training split (see wavtune.data.augment); off by default."""

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
    metric_for_best: str = (
        C.DEFAULT_METRIC
    )  # wer, cer, loss; accuracy, macro_f1, speaker_accuracy...
    max_grad_norm: float = C.DEFAULT_MAX_GRAD_NORM
    # dropout, LayerDrop and SpecAugment off for the first N optimizer steps, then at their set
    # values: from random init a CTC model leaves its all-blank plateau sooner without them
    regularize_after_steps: int = 0
    # stop with a diagnosis after this many optimizer steps in a row skipped for NaN/inf
    max_consecutive_nonfinite: int = C.DEFAULT_MAX_CONSECUTIVE_NONFINITE
    max_batch_seconds: float = 0.0  # > 0: batches by total audio duration instead of batch size
    max_batch_size: int = 0  # with max_batch_seconds: at most this many clips a batch (0: no cap)
    # torch.compile the model (opt-in: on 2 CPU cores its compile time outweighs what it saves
    # in a short run; benchmarks/training.py --only compile); inputs pad to compile_pad_s
    # buckets and label rows to 16 so the compiled shapes repeat
    compile: bool = False
    compile_pad_s: float = 0.25
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # torch compute threads; 0: one per core that is free (affinity, cgroup quota, less cores
    # busy with other work at start), or OMP_NUM_THREADS when set (torchrun sets it to 1)
    num_threads: int = 0
    # live curves in these trackers, each an extra (pip install 'wavtune[tensorboard]'); files
    # under RUN/tracking/
    report_to: list[Tracker] = field(default_factory=list)
    tracker_project: str = "wavtune"  # W&B project, MLflow experiment, TensorBoard subfolder


@dataclass(frozen=True)
class PretrainConfig:
    """Self-supervised pre-training (``wavtune pretrain``): the objective and its knobs."""

    # contrastive: wav2vec 2.0 (quantizer, negatives); hubert: masked prediction of k-means
    # cluster ids of MFCC frames (HuBERT's first iteration)
    objective: Literal["contrastive", "hubert"] = "contrastive"
    mask_time_prob: float = 0.65  # share of real frames that start a masked span
    mask_time_length: int = 10  # frames per masked span
    min_masks: int = 2
    num_negatives: int = 100  # distractors per masked frame
    negatives_from: Literal["real", "masked"] = "real"  # real: drawn from all unpadded frames
    num_codevector_groups: int = 2  # from scratch only: a checkpoint keeps its own codebook
    num_codevectors_per_group: int = 320
    codevector_dim: int = 256
    proj_codevector_dim: int = 256
    gumbel_temperature_max: float = 2.0
    gumbel_temperature_min: float = 0.5
    gumbel_temperature_decay: float = 0.999995  # per optimizer step
    diversity_loss_weight: float = 0.1
    # hubert: k-means clusters of MFCC (+deltas) frames, fitted before the first step on a seeded
    # sample of this many seconds of the training audio (a continued run reuses its folder's)
    num_clusters: int = 100
    kmeans_sample_s: float = 3600.0
    unmasked_loss_weight: float = 0.0  # hubert: weight of the cross-entropy on unmasked frames


@dataclass(frozen=True)
class CardConfig:
    """Facts for the model card that the run cannot know; wavtune.card.model_card renders the
    rest."""

    model_name: str = ""  # card title and model-index name; empty: the run directory's name
    license: str = "apache-2.0"  # a Hub license id
    language: list[str] = field(default_factory=list)  # ISO 639-1 codes, e.g. [zh, en]
    dataset: str = (
        ""  # Hub dataset id (front matter `datasets`, model-index); empty: not on the Hub
    )
    dataset_name: str = ""  # pretty name, e.g. 'TIMIT'; empty: the training manifest's folder name
    dataset_config: str = ""  # e.g. 'en' for Common Voice English
    tags: list[str] = field(default_factory=list)  # besides task, architecture and 'wavtune'
    metrics: list[str] = field(
        default_factory=list
    )  # reported: wer, cer, accuracy, ...; empty: all
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
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    card: CardConfig = field(default_factory=CardConfig)


