"""A ctypes binding to the eSpeak NG library shipped in the `espeakng-loader` wheel.

Only the calls the `tts` rule needs: initialise in synchronous mode, pick a
voice, set rate and pitch, synthesise UTF-8 text and collect the 16-bit
samples through the synth callback. No espeak-ng program, server or system
package is involved.

eSpeak NG keeps state in static variables that survive `espeak_Terminate`
(the same text synthesised twice in one process gives different samples), so
each synthesis loads its own copy of the library: fresh statics make the
output depend on the text, voice and parameters only.
"""

from __future__ import annotations

import _ctypes
import array
import ctypes
import difflib
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Final

import attrs

import mb

# speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS: Final = 2
_INITIALIZE_DONT_EXIT: Final = 0x8000
_POS_CHARACTER: Final = 1
_CHARS_UTF8: Final = 1
_RATE: Final = 1
_PITCH: Final = 3
_EE_OK: Final = 0

#: Limits of `espeakRATE` (words per minute) and of the `-p` pitch of the espeak-ng command.
RATE_RANGE: Final = (80, 450)
PITCH_RANGE: Final = (0, 99)
DEFAULT_RATE: Final = 175

#: Files of espeak-ng-data that every voice reads: phoneme tables and intonation.
#: They are keyed as tools next to the library (the per-language dictionaries
#: are covered by the espeakng-loader version, which the rule also keys).
CORE_DATA_FILES: Final = ("phondata", "phonindex", "phontab", "intonations")


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),  # (priority byte, NUL-terminated name)* then a 0 byte
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


@attrs.frozen
class Speech:
    """Mono 16-bit little-endian samples and their rate."""

    samples: bytes
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / 2 / self.sample_rate


@attrs.frozen
class LibraryFiles:
    """Where the wheel keeps the library and its voice data."""

    library: str
    data_dir: str
    version: str

    @property
    def core_data(self) -> list[str]:
        return [os.path.join(self.data_dir, name) for name in CORE_DATA_FILES]


def find_library() -> LibraryFiles:
    """Locate libespeak-ng and espeak-ng-data inside the installed espeakng-loader wheel.

    Raises `ImportError` when the wheel is missing, so the rule can say which
    package to install.
    """
    from importlib.metadata import version

    import espeakng_loader

    return LibraryFiles(
        library=os.path.abspath(espeakng_loader.get_library_path()),
        data_dir=os.path.abspath(espeakng_loader.get_data_path()),
        version=version("espeakng-loader"),
    )


def synthesize(library: Path, data_dir: Path, text: str, voice: str,
               rate: int | None = None, pitch: int | None = None) -> Speech:
    """Speak `text` with eSpeak NG; raise `mb.ActionError` for a voice it does not know.

    `library` is copied to a private temporary file and loaded from there (see
    the module docstring); the copy is deleted as soon as it is mapped.
    """
    lib = _load_private_copy(library)
    try:
        return _synthesize(lib, data_dir, text, voice, rate, pitch)
    finally:
        lib.espeak_Terminate()
        _ctypes.dlclose(lib._handle)


def _load_private_copy(library: Path) -> ctypes.CDLL:
    with tempfile.TemporaryDirectory(prefix="mb-espeak-") as tmp:
        copy = os.path.join(tmp, library.name)
        shutil.copyfile(library, copy)
        lib = ctypes.CDLL(copy, mode=ctypes.RTLD_LOCAL)
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByProperties.argtypes = [ctypes.POINTER(_Voice)]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_Synth.argtypes = [
        ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
        ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
    ]
    lib.espeak_ListVoices.argtypes = [ctypes.POINTER(_Voice)]
    lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
    for name in ("espeak_SetVoiceByName", "espeak_SetVoiceByProperties", "espeak_SetParameter",
                 "espeak_Synth", "espeak_Synchronize", "espeak_Terminate"):
        getattr(lib, name).restype = ctypes.c_int
    return lib


def _synthesize(lib: ctypes.CDLL, data_dir: Path, text: str, voice: str,
                rate: int | None, pitch: int | None) -> Speech:
    sample_rate = lib.espeak_Initialize(
        _AUDIO_OUTPUT_SYNCHRONOUS, 0, os.fsencode(data_dir), _INITIALIZE_DONT_EXIT
    )
    if sample_rate <= 0:
        raise mb.ActionError(f"eSpeak NG could not start with its data in {data_dir}",
                             retryable=False)
    chunks: list[bytes] = []

    def collect(wav: ctypes._Pointer[ctypes.c_short], count: int, _events: int) -> int:
        if wav and count > 0:
            chunks.append(ctypes.string_at(wav, count * 2))
        return 0  # 0 = go on; 1 would abort the synthesis

    callback = _SynthCallback(collect)  # referenced until the end: C holds the pointer
    lib.espeak_SetSynthCallback(callback)
    _select_voice(lib, voice)
    if rate is not None:
        _check(lib.espeak_SetParameter(_RATE, rate, 0), "set the rate")
    if pitch is not None:
        _check(lib.espeak_SetParameter(_PITCH, pitch, 0), "set the pitch")
    encoded = text.encode("utf-8")
    _check(lib.espeak_Synth(encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8,
                            None, None), "synthesize")
    _check(lib.espeak_Synchronize(), "finish")
    del callback
    return Speech(samples=_little_endian(b"".join(chunks)), sample_rate=sample_rate)


def _select_voice(lib: ctypes.CDLL, voice: str) -> None:
    """Pick a voice by name or file name (`en-us`, `en-us+f3`), else by language (`en-gb`).

    That is the order the espeak-ng command uses for `-v`.
    """
    if lib.espeak_SetVoiceByName(voice.encode("utf-8")) == _EE_OK:
        return
    language = ctypes.create_string_buffer(voice.encode("utf-8"))
    spec = _Voice(languages=ctypes.cast(language, ctypes.c_void_p))
    if lib.espeak_SetVoiceByProperties(ctypes.byref(spec)) == _EE_OK:
        return
    names = _voice_names(lib)
    close = difflib.get_close_matches(voice.lower(), names, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(n) for n in close)}?" if close else (
        "; give a language code such as 'en-us', 'en-gb', 'de' or 'fr',"
        " optionally with a variant ('en-us+f3')")
    raise mb.ActionError(f"eSpeak NG has no voice {voice!r}{hint}", retryable=False)


def _voice_names(lib: ctypes.CDLL) -> list[str]:
    """Every language code and voice file name eSpeak NG accepts, for a suggestion."""
    names: set[str] = set()
    voices = lib.espeak_ListVoices(None)
    index = 0
    while voices and voices[index]:
        entry = voices[index].contents
        if entry.identifier:
            names.add(entry.identifier.decode("utf-8", "replace").rsplit("/", 1)[-1].lower())
        address = entry.languages or 0
        while address and ctypes.string_at(address, 1) != b"\0":
            language = ctypes.string_at(address + 1)  # skip the priority byte
            names.add(language.decode("utf-8", "replace").lower())
            address += 1 + len(language) + 1
        index += 1
    return sorted(names)


def _check(status: int, what: str) -> None:
    if status != _EE_OK:
        raise mb.ActionError(f"eSpeak NG could not {what} (status {status})", retryable=False)


def _little_endian(samples: bytes) -> bytes:
    """The callback gives native-endian shorts; WAV wants little-endian."""
    if sys.byteorder == "little":
        return samples
    swapped = array.array("h", samples)
    swapped.byteswap()
    return swapped.tobytes()
