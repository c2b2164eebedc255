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
import functools
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
        _unload(lib)


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


def _unload(lib: ctypes.CDLL) -> None:
    """Unmap the private copy, so a long-lived process does not collect one per synthesis."""
    close = getattr(_ctypes, "dlclose", None) or getattr(_ctypes, "FreeLibrary", None)
    if close is not None:
        close(lib._handle)


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
    """Select `voice` strictly: eSpeak NG itself falls back to a default voice for any
    unknown name (even `klingon`), which would silently speak the wrong language."""
    try:
        resolved = resolve_voice(_catalog_of(lib), voice)
    except UnknownVoice as exc:  # the rule checks at analysis; a changed install lands here
        raise mb.ActionError(str(exc), retryable=False) from None
    _check(lib.espeak_SetVoiceByName(resolved.encode("utf-8")), f"select the voice {voice!r}")


class UnknownVoice(ValueError):
    """A voice or variant eSpeak NG does not have; the message names the closest ones."""


@attrs.frozen
class VoiceCatalog:
    """What `espeak_ListVoices` lists: the voices, and the variants (`+f3`)."""

    voices: tuple[VoiceEntry, ...]
    variants: tuple[VoiceEntry, ...]


def _catalog_of(lib: ctypes.CDLL) -> VoiceCatalog:
    """The catalog of an initialised library."""
    return VoiceCatalog(voices=tuple(_list_voices(lib, None)),
                        variants=tuple(_list_voices(lib, "variant")))


@functools.lru_cache(maxsize=4)
def installed_catalog(library: str, data_dir: str) -> VoiceCatalog:
    """The catalog of the installed library and data, for checking a target's voice at
    analysis (~50 ms: load a private copy, initialise, list; once per process)."""
    lib = _load_private_copy(Path(library))
    try:
        if lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, os.fsencode(data_dir),
                                 _INITIALIZE_DONT_EXIT) <= 0:
            raise OSError(f"eSpeak NG could not start with its data in {data_dir}")
        return _catalog_of(lib)
    finally:
        lib.espeak_Terminate()
        _unload(lib)


def resolve_voice(catalog: VoiceCatalog, voice: str) -> str:
    """The voice file for `voice`: a language (`en-gb`), a file name (`en-US`, `gmw/en`)
    or a voice name (`English (America)`), optionally `+variant` (`en-us+f3`).

    A language spoken by several voices gets the one eSpeak NG ranks first
    for it (lowest priority number), as `espeak-ng -v en-gb` does. Raises
    `UnknownVoice` for a voice or variant the catalog does not have.
    """
    base, plus, variant = voice.strip().partition("+")
    wanted = base.strip().lower().replace("_", " ")
    best: tuple[int, str] | None = None
    names: set[str] = set()
    for entry in catalog.voices:
        keys = {entry.identifier.lower(), entry.identifier.rsplit("/", 1)[-1].lower(),
                entry.name.lower()}
        names.add(entry.identifier.rsplit("/", 1)[-1].lower())
        for priority, language in entry.languages:
            names.add(language)
            if language == wanted and (best is None or priority < best[0]):
                best = (priority, entry.identifier)
        if wanted in keys:
            best = (-1, entry.identifier)
    if best is None:
        raise UnknownVoice(_unknown("voice", base, sorted(names)))
    if not plus:
        return best[1]
    variants = {entry.identifier.rsplit("/", 1)[-1]: entry.identifier
                for entry in catalog.variants}
    by_lower = {name.lower(): name for name in variants}
    if variant.strip().lower() not in by_lower:
        raise UnknownVoice(_unknown("voice variant", variant, sorted(variants)))
    return f"{best[1]}+{by_lower[variant.strip().lower()]}"


def _unknown(what: str, name: str, known: list[str]) -> str:
    by_lower = {k.lower(): k for k in known}
    close = [by_lower[c] for c in difflib.get_close_matches(name.lower(), list(by_lower), n=3,
                                                             cutoff=0.6)]
    if close:
        hint = f"did you mean {' or '.join(repr(n) for n in close)}?"
    elif what == "voice":
        hint = ("give a language code such as 'en-us', 'en-gb', 'de' or 'fr',"
                " optionally with a variant ('en-us+f3')")
    else:
        hint = "variants: " + ", ".join(known)
    return f"eSpeak NG has no {what} {name!r}; {hint}"


@attrs.frozen
class VoiceEntry:
    """One voice eSpeak NG lists: `gmw/en-US`, `English (America)`, [(2, 'en-us'), (3, 'en')]."""

    identifier: str
    name: str
    languages: tuple[tuple[int, str], ...]


def _list_voices(lib: ctypes.CDLL, languages: str | None) -> list[VoiceEntry]:
    """`espeak_ListVoices`: every voice, or those matching `languages` (`"variant"`)."""
    spec = None
    if languages is not None:
        buffer = ctypes.create_string_buffer(languages.encode("utf-8"))
        spec = ctypes.byref(_Voice(languages=ctypes.cast(buffer, ctypes.c_void_p)))
    voices = lib.espeak_ListVoices(spec)
    found: list[VoiceEntry] = []
    index = 0
    while voices and voices[index]:
        entry = voices[index].contents
        found.append(VoiceEntry(
            identifier=(entry.identifier or b"").decode("utf-8", "replace"),
            name=(entry.name or b"").decode("utf-8", "replace"),
            languages=tuple(_languages(entry.languages or 0)),
        ))
        index += 1
    return found


def _languages(address: int) -> list[tuple[int, str]]:
    """Decode `espeak_VOICE.languages`: (priority byte, NUL-terminated name)*, then a 0 byte."""
    found = []
    while address and (priority := ctypes.string_at(address, 1)[0]) != 0:
        language = ctypes.string_at(address + 1)
        found.append((priority, language.decode("utf-8", "replace").lower()))
        address += 1 + len(language) + 1
    return found


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
