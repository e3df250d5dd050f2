"""Typed configuration: dataclass sections, YAML load/dump and ``--set section.key=value``
overrides.

Only this package reads YAML. Unknown keys, wrong types and impossible values are rejected before
any work starts, with the key's dotted path (and the nearest valid key for a misspelt one).

* :mod:`.sections`: the sections as frozen dataclasses (every key and its default);
* :mod:`.schema`: plain data -> dataclasses, type checks, ``--set`` overrides;
* :mod:`.rules`: values that parse but cannot work together;
* :mod:`.files`: reading and writing YAML files.
"""

from wavtune.config.files import dump_config, load_config
from wavtune.config.rules import augment_options, validate
from wavtune.config.schema import apply_overrides, from_dict, to_dict
from wavtune.config.sections import (
    AugmentConfig,
    CardConfig,
    Config,
    ConfigError,
    DataConfig,
    EvalStrategy,
    HeadsConfig,
    ModelConfig,
    OnError,
    PeftConfig,
    Precision,
    PretrainConfig,
    Scheduler,
    TextConfig,
    TrainConfig,
)

__all__ = [
    "AugmentConfig", "CardConfig", "Config", "ConfigError", "DataConfig", "EvalStrategy",
    "HeadsConfig", "ModelConfig", "OnError", "PeftConfig", "Precision", "PretrainConfig",
    "Scheduler", "TextConfig", "TrainConfig",
    "apply_overrides", "augment_options", "dump_config", "from_dict", "load_config", "to_dict",
    "validate",
]
