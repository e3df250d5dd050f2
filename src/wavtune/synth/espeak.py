"""eSpeak NG as a speech engine: text + voice -> int16 waveform, offline and repeatable.

Two routes to the same synthesiser:

* ``library``: the ``libespeak-ng`` shared library and its voice data bundled in the PyPI package
  ``espeakng-loader`` (eSpeak NG 1.52), driven through ctypes in one forked child per utterance
  (the library carries state from one utterance to the next; a fresh child makes each clip a
  function of its request alone). About 15 ms a short utterance; Linux and macOS (needs fork).
* ``binary``: the ``espeak-ng`` program (Debian: ``apt-get install espeak-ng``, 1.51 on bookworm),
  one subprocess per utterance, also about 15 ms each.

``load_engine("auto")`` takes the library when it is installed, else the program on PATH. The two
releases do not give byte-identical audio: a corpus is reproducible for a given engine and release.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from wavtune.errors import WavtuneError

EngineKind = Literal["auto", "library", "binary"]
ENGINE_KINDS: tuple[EngineKind, ...] = ("auto", "library", "binary")

DEFAULT_BINARY = "espeak-ng"
DEFAULT_RATE_WPM = 175  # eSpeak's default speaking rate, words per minute
DEFAULT_PITCH = 50  # eSpeak's pitch scale, 0..99

INSTALL_HINT = (
    "install eSpeak NG with 'pip install espeakng-loader' (bundles the library and its voices) "
    "or 'apt-get install espeak-ng' (the espeak-ng program)"
)

Int16Wave = npt.NDArray[np.int16]  # [samples], mono


class EspeakNotFoundError(WavtuneError, RuntimeError):
    """Neither the eSpeak NG library nor the program could be found or loaded."""


class EspeakError(WavtuneError, RuntimeError):
    """eSpeak NG was found but failed on a request (an unknown voice, a crash)."""


@dataclass(frozen=True)
class SpeechRequest:
    """One thing to say: ``text`` in ``voice`` (e.g. ``en-us+f2``) at a rate and pitch."""

    text: str
    voice: str
    rate_wpm: int = DEFAULT_RATE_WPM
    pitch: int = DEFAULT_PITCH  # 0..99
    seed: int = 0  # eSpeak's noise generator (library only; the program always starts fresh)


class SpeechEngine(Protocol):
    """What the corpus synthesiser needs from a text-to-speech engine."""

    @property
    def sample_rate(self) -> int: ...  # Hz of the waveforms ``speak`` returns

    @property
    def description(self) -> str: ...  # e.g. "espeak-ng 1.52.0 (library)"

    def speak(self, request: SpeechRequest) -> Int16Wave: ...

    def speak_many(self, requests: Sequence[SpeechRequest], workers: int = 1) -> list[Int16Wave]:
        """``speak`` over ``requests`` with up to ``workers`` in parallel; results in order."""
        ...


# espeak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EE_OK = 0
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH = 1, 2, 3
_CHILD_FAILED, _CHILD_NO_VOICE = 3, 4  # exit codes of a forked synthesis child
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class EspeakLibrary:
    """libespeak-ng through ctypes, one forked child per utterance.

    The synthesiser keeps state from one utterance to the next (phase, filter memory, noise), so
    the same request said twice in one process gives different samples. This process therefore
    only initialises the library and never speaks: each request is said in a child forked from
    that pristine state, which makes every request's audio a function of the request alone.
    """

    def __init__(self, library: Path, data: Path | None) -> None:
        if not hasattr(os, "fork"):
            raise EspeakNotFoundError(
                "the eSpeak NG library route forks one process per utterance and this platform "
                "has no os.fork; use the espeak-ng program instead (engine 'binary')"
            )
        try:
            lib = ctypes.CDLL(str(library))
        except OSError as e:
            raise EspeakNotFoundError(
                f"cannot load the eSpeak NG library {library} ({e}); {INSTALL_HINT}"
            ) from None
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Info.restype = ctypes.c_char_p
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        path = None if data is None else str(data).encode()
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, path, 0)
        if rate <= 0:
            raise EspeakNotFoundError(
                f"the eSpeak NG library {library} could not initialise with voice data "
                f"{data or '(built-in path)'}; {INSTALL_HINT}"
            )
        self._lib = lib
        self._rate = int(rate)
        self._chunks: list[bytes] = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # kept: C holds a pointer to it
        lib.espeak_SetSynthCallback(self._callback)
        version = lib.espeak_Info(None)
        self._description = f"espeak-ng {version.decode() if version else '?'} (library {library})"

    @property
    def sample_rate(self) -> int:
        return self._rate

    @property
    def description(self) -> str:
        return self._description

    def _collect(self, wav: ctypes._Pointer[ctypes.c_short], n: int, _events: int | None) -> int:
        if n > 0 and wav:
            self._chunks.append(ctypes.string_at(wav, 2 * n))
        return 0  # 0: go on synthesising

    def speak(self, request: SpeechRequest) -> Int16Wave:
        return self.speak_many([request])[0]

    def speak_many(self, requests: Sequence[SpeechRequest], workers: int = 1) -> list[Int16Wave]:
        """Say each request in its own forked child, ``workers`` children at a time, in order."""
        out: list[Int16Wave] = []
        running: deque[tuple[int, Path, SpeechRequest]] = deque()
        with tempfile.TemporaryDirectory(prefix="wavtune-espeak-") as tmp:
            try:
                for i, request in enumerate(requests):
                    if len(running) >= max(1, workers):
                        out.append(self._reap(*running.popleft()))
                    wav = Path(tmp) / f"{i}.raw"
                    running.append((self._fork(request, wav), wav, request))
                while running:
                    out.append(self._reap(*running.popleft()))
            finally:
                for pid, _, _ in running:  # only after an error or an interrupt
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
        return out

    def _fork(self, request: SpeechRequest, wav: Path) -> int:
        pid = os.fork()
        if pid:
            return pid
        code = _CHILD_FAILED
        try:  # the child: never return into the parent's stack
            code = self._say(request, wav)
        finally:
            os._exit(code)

    def _say(self, request: SpeechRequest, wav: Path) -> int:
        lib = self._lib
        if lib.espeak_SetVoiceByName(request.voice.encode()) != _EE_OK:
            return _CHILD_NO_VOICE
        for param, value in (
            (_PARAM_RATE, request.rate_wpm), (_PARAM_PITCH, request.pitch), (_PARAM_VOLUME, 100),
        ):  # fmt: skip
            lib.espeak_SetParameter(param, value, 0)
        if hasattr(lib, "espeak_ng_SetRandSeed"):  # 1.52+: eSpeak's own noise generator
            lib.espeak_ng_SetRandSeed(ctypes.c_long(request.seed))
        ctypes.CDLL(None).srand(ctypes.c_uint(request.seed & 0xFFFFFFFF))  # and libc rand()
        text = request.text.encode("utf-8")
        status = lib.espeak_Synth(
            text, len(text) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
        )
        if status != _EE_OK or lib.espeak_Synchronize() != _EE_OK:
            return _CHILD_FAILED
        wav.write_bytes(b"".join(self._chunks))
        return 0

    def _reap(self, pid: int, wav: Path, request: SpeechRequest) -> Int16Wave:
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code == _CHILD_NO_VOICE:
            raise EspeakError(
                f"eSpeak NG has no voice {request.voice!r}; list them with "
                f"'espeak-ng --voices' and variants with 'espeak-ng --voices=variant'"
            )
        if code != 0 or not wav.is_file():
            raise EspeakError(
                f"eSpeak NG failed (child exit {code}) on {request.text!r} in voice "
                f"{request.voice!r}"
            )
        samples: Int16Wave = np.frombuffer(wav.read_bytes(), dtype=np.int16).copy()
        return samples


class EspeakBinary:
    """The ``espeak-ng`` program, one subprocess per request (thread-safe)."""

    def __init__(self, program: Path) -> None:
        self._program = program
        try:
            out = subprocess.run(
                [str(program), "--version"], capture_output=True, check=True, timeout=30
            ).stdout.decode(errors="replace")
        except (OSError, subprocess.SubprocessError) as e:
            raise EspeakNotFoundError(
                f"cannot run {program} --version ({e}); {INSTALL_HINT}"
            ) from None
        words = out.split(":", 1)[-1].split()
        self._description = f"espeak-ng {words[0] if words else '?'} (program {program})"
        self._rate = int(self._run(SpeechRequest(text="a", voice="en")).rate)

    @property
    def sample_rate(self) -> int:
        return self._rate

    @property
    def description(self) -> str:
        return self._description

    def speak(self, request: SpeechRequest) -> Int16Wave:
        result = self._run(request)
        if result.rate != self._rate:
            raise EspeakError(f"{self._program} changed its sample rate to {result.rate} Hz")
        return result.samples

    def speak_many(self, requests: Sequence[SpeechRequest], workers: int = 1) -> list[Int16Wave]:
        if workers <= 1 or len(requests) <= 1:
            return [self.speak(r) for r in requests]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(self.speak, requests))

    def _run(self, request: SpeechRequest) -> _Wav:
        args = [
            str(self._program), "-b", "1", "--stdin", "--stdout", "-v", request.voice,
            "-s", str(request.rate_wpm), "-p", str(request.pitch), "-a", "100",
        ]  # fmt: skip
        proc = subprocess.run(
            args, input=request.text.encode("utf-8"), capture_output=True, timeout=60, check=False
        )
        stderr = proc.stderr.decode(errors="replace").strip()
        if proc.returncode != 0 or "does not exist" in stderr:
            hint = ""
            if "voice" in stderr:
                hint = (
                    "; list voices with 'espeak-ng --voices' and variants with '--voices=variant'"
                )
            raise EspeakError(
                f"{self._program} failed on {request.text!r} in voice {request.voice!r} "
                f"(exit {proc.returncode}: {stderr or 'no message'}){hint}"
            )
        return _parse_wav(proc.stdout, str(self._program))


@dataclass(frozen=True)
class _Wav:
    rate: int  # Hz
    samples: Int16Wave


def _parse_wav(data: bytes, source: str) -> _Wav:
    """16-bit mono PCM from a streamed WAV (its size fields are placeholders, so not trusted)."""
    at = data.find(b"data", 12)
    if not data.startswith(b"RIFF") or at < 0 or data.find(b"fmt ", 12) < 0:
        raise EspeakError(f"{source} did not write a WAV stream ({len(data)} bytes)")
    fmt = data.find(b"fmt ", 12) + 8
    channels = int.from_bytes(data[fmt + 2 : fmt + 4], "little")
    rate = int.from_bytes(data[fmt + 4 : fmt + 8], "little")
    bits = int.from_bytes(data[fmt + 14 : fmt + 16], "little")
    if channels != 1 or bits != 16:
        raise EspeakError(f"{source} wrote {channels}-channel {bits}-bit audio, not mono 16-bit")
    body = data[at + 8 :]
    body = body[: len(body) - len(body) % 2]
    return _Wav(rate, np.frombuffer(body, dtype="<i2").astype(np.int16))


def bundled_library() -> tuple[Path, Path]:
    """The library and voice data of the ``espeakng-loader`` package; EspeakNotFoundError if
    absent."""
    try:
        import espeakng_loader
    except ImportError:
        raise EspeakNotFoundError(
            f"the Python package 'espeakng-loader' is not installed; {INSTALL_HINT}"
        ) from None
    library = Path(espeakng_loader.get_library_path())
    data = library.parent / "espeak-ng-data"
    if not library.is_file() or not data.is_dir():
        raise EspeakNotFoundError(
            f"espeakng-loader is installed but {library} or {data} is missing; reinstall it with "
            f"'pip install --force-reinstall espeakng-loader'"
        )
    return library, data


_LIBRARIES: dict[tuple[Path, Path | None], EspeakLibrary] = {}
_LIBRARIES_LOCK = threading.Lock()


def _open_library(library: Path | None, data: Path | None) -> EspeakLibrary:
    if library is None:
        library, data = bundled_library()
    elif not library.is_file():
        raise EspeakNotFoundError(f"eSpeak NG library {library} not found; {INSTALL_HINT}")
    key = (library, data)
    with _LIBRARIES_LOCK:
        if key not in _LIBRARIES:
            if _LIBRARIES:
                raise EspeakError(
                    f"eSpeak NG library {next(iter(_LIBRARIES))[0]} is already loaded in this "
                    f"process; one process can use one eSpeak NG library"
                )
            _LIBRARIES[key] = EspeakLibrary(library, data)
        return _LIBRARIES[key]


def _find_program(binary: str | Path) -> Path:
    found = shutil.which(str(binary))
    if found is None:
        raise EspeakNotFoundError(
            f"eSpeak NG program {str(binary)!r} not found on PATH; {INSTALL_HINT}"
        )
    return Path(found)


def load_engine(
    kind: EngineKind = "auto",
    *,
    binary: str | Path = DEFAULT_BINARY,
    library: Path | None = None,
    data: Path | None = None,
) -> SpeechEngine:
    """An eSpeak NG engine: ``library`` (espeakng-loader's, or ``library``/``data`` given), or
    the ``binary`` program; ``auto`` tries the library first, then the program.

    Raises EspeakNotFoundError, saying how to install eSpeak NG, when the route(s) asked for fail.
    """
    if kind == "library":
        return _open_library(library, data)
    if kind == "binary":
        return EspeakBinary(_find_program(binary))
    if kind != "auto":
        raise ValueError(f"unknown speech engine {kind!r}; use one of {', '.join(ENGINE_KINDS)}")
    try:
        return _open_library(library, data)
    except EspeakNotFoundError as lib_error:
        try:
            return EspeakBinary(_find_program(binary))
        except EspeakNotFoundError as bin_error:
            raise EspeakNotFoundError(
                f"eSpeak NG is not available: {lib_error.args[0].split(';')[0]}, and "
                f"{bin_error.args[0].split(';')[0]}; {INSTALL_HINT}"
            ) from None
