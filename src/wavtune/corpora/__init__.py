"""Corpus importers: read a corpus in its published layout and write one manifest per split.

>>> from wavtune.corpora import prepare, PrepareOptions  # doctest: +SKIP
>>> prepare("fsdd", Path("data/fsdd"), Path("manifests/fsdd"), PrepareOptions())  # doctest: +SKIP
"""

from wavtune.corpora.base import CorpusError, ImportedCorpus, Importer, PrepareOptions
from wavtune.corpora.registry import CORPORA, PrepareResult, SplitSummary, prepare
from wavtune.corpora.splits import DEFAULT_SPLIT_FRACTIONS, speaker_split

__all__ = [
    "CORPORA",
    "DEFAULT_SPLIT_FRACTIONS",
    "CorpusError",
    "ImportedCorpus",
    "Importer",
    "PrepareOptions",
    "PrepareResult",
    "SplitSummary",
    "prepare",
    "speaker_split",
]
