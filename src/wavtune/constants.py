"""Project-wide constants: sample rates, special tokens and ``DEFAULT_*`` values."""

from __future__ import annotations

SAMPLE_RATE = 16_000  # Hz; every wav2vec2-family checkpoint in the seeds was pre-trained at 16 kHz

# Special tokens of the CTC vocabulary. The pad token doubles as the CTC blank (transformers'
# convention).
PAD_TOKEN = "[PAD]"
UNK_TOKEN = "[UNK]"
WORD_DELIMITER = "|"

MANIFEST_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv")
# audio files found in folders (transcribe, classify, the folder importer); soundfile reads them all
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".sph", ".nist", ".aiff", ".aif")
# Manifest columns with a fixed meaning; every other column is kept as a label.
MANIFEST_CORE_FIELDS = ("id", "audio", "offset", "duration", "text", "speaker")

DEFAULT_LEARNING_RATE = 1e-4
DEFAULT_BATCH_SIZE = 8
DEFAULT_SEED = 42
DEFAULT_ADAM_BETAS = (0.9, 0.999)
DEFAULT_ADAM_EPSILON = 1e-8
DEFAULT_WARMUP_STEPS = 500
DEFAULT_MAX_GRAD_NORM = 1.0  # gradient clipping is on by default
DEFAULT_MAX_CONSECUTIVE_NONFINITE = 10  # skipped NaN/inf steps in a row before a run stops
DEFAULT_METRIC = "wer"

# Long-audio inference: chunk length and the overlap kept on each side (seconds).
DEFAULT_CHUNK_S = 30.0
DEFAULT_CHUNK_OVERLAP_S = 5.0
DEFAULT_INFER_BATCH_SIZE = 8  # clips per forward pass when transcribing, classifying, evaluating

# Forced alignment: how far a word edge may move from the characters the model hears to the end
# of its sound (seconds), and the mislabelled-row rule of ``check-data --align``.
DEFAULT_ALIGN_SNAP_S = 0.8
DEFAULT_ALIGN_SILENCE_PENALTY = 10.0  # nats per character on a frame at the noise floor
# segment: seconds of audio aligned at a time (its last quarter is aligned again by the next)
DEFAULT_SEGMENT_WINDOW_S = 120.0
DEFAULT_OUTLIER_K = 3.0  # robust standard deviations above the median of log(-score)
DEFAULT_MAX_FLAG_SCORE = -1.0  # never flag a row scoring above this (mean log-posterior)
