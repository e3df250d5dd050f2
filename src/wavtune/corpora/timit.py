"""TIMIT in its LDC layout: ``{TRAIN,TEST}/DR*/SPEAKER/*.{WAV,PHN,WRD,TXT}`` (any letter case).

WAV files are NIST SPHERE (uncompressed, read by libsndfile) or RIFF copies named ``*.WAV.wav``.
Labels: ``phones`` (the 61-phone transcription), ``phones39`` (folded for scoring), ``dialect``,
``gender``; ``speaker`` is the speaker folder, e.g. MJSW0.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from wavtune.corpora.base import (
    ImportedCorpus,
    PrepareOptions,
    find_child,
    header_duration,
    layout_error,
    progress,
    select_splits,
)
from wavtune.data.manifest import Utterance

SPLITS = ("train", "test")
# The two dialect sentences every speaker read (SA1, SA2); excluded from training as is standard.
SA_PREFIX = "sa"

# 61 TIMIT phones -> the 39 of Lee & Hon (1989), as in Kaldi's egs/timit conf/phones.60-48-39.map.
# None: the glottal stop q is deleted. The 48-phone intermediates (cl, vcl, sil) and the 39 targets
# map onto themselves, so folding twice is the same as folding once.
# fmt: off
TIMIT_61_TO_39: Mapping[str, str | None] = {
    "aa": "aa", "ae": "ae", "ah": "ah", "ao": "aa", "aw": "aw", "ax": "ah", "ax-h": "ah",
    "axr": "er", "ay": "ay", "b": "b", "bcl": "sil", "ch": "ch", "d": "d", "dcl": "sil",
    "dh": "dh", "dx": "dx", "eh": "eh", "el": "l", "em": "m", "en": "n", "eng": "ng",
    "epi": "sil", "er": "er", "ey": "ey", "f": "f", "g": "g", "gcl": "sil", "h#": "sil",
    "hh": "hh", "hv": "hh", "ih": "ih", "ix": "ih", "iy": "iy", "jh": "jh", "k": "k",
    "kcl": "sil", "l": "l", "m": "m", "n": "n", "ng": "ng", "nx": "n", "ow": "ow", "oy": "oy",
    "p": "p", "pau": "sil", "pcl": "sil", "q": None, "r": "r", "s": "s", "sh": "sh", "t": "t",
    "tcl": "sil", "th": "th", "uh": "uh", "uw": "uw", "ux": "uw", "v": "v", "w": "w", "y": "y",
    "z": "z", "zh": "sh",
}
# fmt: on
_EXTRA_SYMBOLS: Mapping[str, str] = {"sil": "sil", "cl": "sil", "vcl": "sil"}  # 48/39-set names

LAYOUT = """\
  SRC/                 (or SRC/TIMIT/, SRC/data/; folder and file names in any case)
    TRAIN/DR1/MJSW0/SI1010.WAV   NIST SPHERE (or SI1010.WAV.wav, RIFF)
                    SI1010.PHN   "start end phone" per line (61 TIMIT phones)
                    SI1010.WRD   "start end word" per line  (or SI1010.TXT: "start end sentence")
    TEST/DR1/FAKS0/...
"""


def fold_timit_phones(phones: list[str]) -> list[str]:
    """Fold TIMIT's 61 phones to the 39 used for scoring (Lee & Hon 1989; Kaldi's map).

    Closures, pauses, epenthetic silence and h# become ``sil``; ``q`` is deleted. Case-insensitive.

    >>> fold_timit_phones(["h#", "sh", "ix", "hv", "eh", "dcl", "jh", "q", "axr", "h#"])
    ['sil', 'sh', 'ih', 'hh', 'eh', 'sil', 'jh', 'er', 'sil']
    """
    folded: list[str] = []
    for phone in phones:
        key = phone.lower()
        if key in TIMIT_61_TO_39:
            target = TIMIT_61_TO_39[key]
        elif key in _EXTRA_SYMBOLS:
            target = _EXTRA_SYMBOLS[key]
        else:
            raise ValueError(
                f"'{phone}' is not a TIMIT phone; expected one of the 61: "
                f"{' '.join(sorted(TIMIT_61_TO_39))}"
            )
        if target is not None:
            folded.append(target)
    return folded


def _timed_tokens(path: Path) -> list[str]:
    """The third field of every ``start end token`` line (.PHN, .WRD)."""
    tokens: list[str] = []
    for line_no, line in enumerate(
        path.read_text(encoding="utf-8", errors="replace").splitlines(), 1
    ):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise layout_error(
                "timit", path, f"line {line_no} is {line!r}, not 'start end token'", LAYOUT
            )
        tokens.append(fields[2])
    return tokens


def _sentence(path: Path) -> str:
    """A .TXT transcript without its leading start and end sample numbers."""
    fields = path.read_text(encoding="utf-8", errors="replace").split(maxsplit=2)
    return fields[2].strip() if len(fields) == 3 else ""


def _timit_root(src: Path) -> Path:
    for candidate in (src, find_child(src, "timit"), find_child(src, "data")):
        if candidate is None:
            continue
        if any(find_child(candidate, split) for split in SPLITS):
            return candidate
    raise layout_error("timit", src, "no TRAIN or TEST folder here", LAYOUT)


def _speaker_utterances(
    speaker_dir: Path, dialect: str, options: PrepareOptions
) -> list[Utterance]:
    files = {p.name.lower(): p for p in speaker_dir.iterdir() if p.is_file()}
    speaker = speaker_dir.name.upper()
    utts: list[Utterance] = []
    for name in sorted(n for n in files if n.endswith(".phn")):
        stem = name[: -len(".phn")]
        if stem.startswith(SA_PREFIX) and not options.include_sa:
            continue
        audio = files.get(f"{stem}.wav") or files.get(f"{stem}.wav.wav")
        if audio is None:
            raise layout_error(
                "timit", files[name], f"no audio file {stem.upper()}.WAV beside it", LAYOUT
            )
        if f"{stem}.wrd" in files:
            text = " ".join(_timed_tokens(files[f"{stem}.wrd"]))
        elif f"{stem}.txt" in files:
            text = _sentence(files[f"{stem}.txt"])
        else:
            raise layout_error(
                "timit", files[name], f"no {stem.upper()}.WRD or .TXT beside it", LAYOUT
            )
        phones = _timed_tokens(files[name])
        try:
            phones39 = fold_timit_phones(phones)
        except ValueError as e:
            raise layout_error("timit", files[name], str(e), LAYOUT) from None
        utts.append(
            Utterance(
                id=f"{speaker}_{stem.upper()}",
                audio=audio.resolve(),
                text=text,
                duration_s=header_duration(audio),
                speaker=speaker,
                labels={
                    "phones": " ".join(phones),
                    "phones39": " ".join(phones39),
                    "dialect": dialect,
                    "gender": speaker[0],
                },
            )
        )
    return utts


def import_timit(src: Path, out: Path, options: PrepareOptions) -> ImportedCorpus:
    """TIMIT's train and test sets from their folders (SA sentences excluded unless include_sa)."""
    root = _timit_root(src)
    folders = {split: f for split in SPLITS if (f := find_child(root, split)) is not None}
    splits: dict[str, list[Utterance]] = {}
    for split in select_splits(list(folders), options, root):
        folder = folders[split]
        speaker_dirs = [
            (dialect.name.upper(), speaker)
            for dialect in sorted(folder.iterdir())
            if dialect.is_dir() and dialect.name.lower().startswith("dr")
            for speaker in sorted(dialect.iterdir())
            if speaker.is_dir()
        ]
        if not speaker_dirs:
            raise layout_error("timit", folder, "no DR*/SPEAKER folders here", LAYOUT)
        utts: list[Utterance] = []
        for dialect, speaker_dir in progress(speaker_dirs, options, f"timit {split}"):
            utts.extend(_speaker_utterances(speaker_dir, dialect, options))
        if not utts:
            raise layout_error("timit", folder, "no .PHN transcriptions found", LAYOUT)
        splits[split] = utts
    return ImportedCorpus(splits)
