"""A local stand-in for OpenAI's `POST /v1/audio/speech`, for the `tts` rule's tests.

It follows the real protocol: a bearer key, a JSON body checked the way the
API checks it (400 with OpenAI's error shape for a bad field, 401 for a bad
key), and a WAV answer streamed with chunked transfer encoding whose RIFF and
data sizes are 0xFFFFFFFF, as api.openai.com sends it. The audio is a sine
tone (one pitch per voice, 60 ms per character of input at `speed` 1) at
24 kHz mono 16-bit, OpenAI's format, so tests can check the samples.
"""

from __future__ import annotations

import json
import math
import struct
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs

SAMPLE_RATE = 24000
SECONDS_PER_CHAR = 0.06
VOICES = {"alloy": 220.0, "ash": 247.0, "coral": 262.0, "echo": 294.0, "fable": 330.0,
          "nova": 349.0, "onyx": 392.0, "sage": 440.0, "shimmer": 494.0}
FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")


@attrs.define
class SpeechServer:
    """What the server was asked, and switches that make it misbehave like real ones do."""

    api_key: str
    url: str = ""
    requests: list[dict[str, Any]] = attrs.field(factory=list)
    #: Answer MP3 whatever `response_format` says (some compatible servers do).
    force_mp3: bool = False


def tone(frequency: float, seconds: float, rate: int = SAMPLE_RATE) -> bytes:
    """A sine tone at 0.4 full scale as 16-bit little-endian samples."""
    count = int(seconds * rate)
    return struct.pack(f"<{count}h", *(
        int(13107 * math.sin(2 * math.pi * frequency * i / rate)) for i in range(count)))


def streamed_wav_header(rate: int = SAMPLE_RATE) -> bytes:
    """OpenAI's streamed WAV header: sizes 0xFFFFFFFF because they are not known yet."""
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    return (b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + b"fmt " + struct.pack("<I", 16)
            + fmt + b"data" + struct.pack("<I", 0xFFFFFFFF))


def encode_mp3(samples: bytes) -> bytes:
    """A real MP3 of the samples, from the ffmpeg that imageio-ffmpeg ships."""
    import imageio_ffmpeg

    return subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "s16le", "-ar", str(SAMPLE_RATE),
         "-ac", "1", "-i", "pipe:0", "-f", "mp3", "pipe:1"],
        input=samples, capture_output=True, check=True).stdout


def _invalid(message: str, param: str | None) -> tuple[int, dict[str, Any]]:
    return 400, {"error": {"message": message, "type": "invalid_request_error",
                           "param": param, "code": None}}


def check_request(body: Any) -> tuple[int, dict[str, Any]] | None:
    """The checks the API makes on a speech request; None when the body is acceptable."""
    if not isinstance(body, dict):
        return _invalid("We could not parse the JSON body of your request.", None)
    for field in ("model", "input", "voice"):
        if field not in body:
            return _invalid(f"Missing required parameter: '{field}'.", field)
        if not isinstance(body[field], str):
            return _invalid(f"Invalid type for '{field}': expected a string.", field)
    if body["model"] not in MODELS:
        return 404, {"error": {"message": f"The model `{body['model']}` does not exist.",
                               "type": "invalid_request_error", "param": None,
                               "code": "model_not_found"}}
    if not body["input"] or len(body["input"]) > 4096:
        return _invalid("'input' must be 1 to 4096 characters.", "input")
    if body["voice"] not in VOICES:
        return _invalid(f"Invalid value: '{body['voice']}'. Supported values are: "
                        + ", ".join(f"'{v}'" for v in VOICES) + ".", "voice")
    if body.get("response_format", "mp3") not in FORMATS:
        return _invalid(f"Invalid value: '{body['response_format']}'.", "response_format")
    speed = body.get("speed", 1.0)
    if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not 0.25 <= speed <= 4:
        return _invalid(f"Invalid 'speed': {speed!r}; expected a number from 0.25 to 4.0.",
                        "speed")
    return None


def _handler(server: SpeechServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                body: Any = json.loads(raw)
            except ValueError:
                body = None
            server.requests.append({"path": self.path, "headers": dict(self.headers),
                                    "json": body})
            if self.path != "/v1/audio/speech":
                return self._json(404, {"error": {"message": f"Invalid URL (POST {self.path})",
                                                  "type": "invalid_request_error",
                                                  "param": None, "code": None}})
            if self.headers.get("Authorization") != f"Bearer {server.api_key}":
                given = self.headers.get("Authorization", "").removeprefix("Bearer ")
                masked = f"{given[:3]}*****{given[-4:]}" if len(given) > 8 else "*****"
                return self._json(401, {"error": {
                    "message": f"Incorrect API key provided: {masked}. You can find your API"
                               " key at https://platform.openai.com/account/api-keys.",
                    "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}})
            problem = check_request(body)
            if problem is not None:
                return self._json(*problem)
            seconds = SECONDS_PER_CHAR * len(body["input"]) / body.get("speed", 1.0)
            samples = tone(VOICES[body["voice"]], seconds)
            if server.force_mp3 or body.get("response_format", "mp3") == "mp3":
                return self._stream("audio/mpeg", [encode_mp3(samples)])
            if body["response_format"] != "wav":
                return self._json(*_invalid("this fake answers only wav and mp3", "response_format"))
            chunks = [streamed_wav_header()] + [samples[i:i + 4800]
                                                for i in range(0, len(samples), 4800)]
            self._stream("audio/wav", chunks)

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, content_type: str, chunks: list[bytes]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in chunks:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")

    return Handler


@contextmanager
def serve(api_key: str) -> Iterator[SpeechServer]:
    """Run the fake on 127.0.0.1 (a free port) in a thread for the `with` block."""
    state = SpeechServer(api_key=api_key)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    # A short poll interval: shutdown() waits for the loop to notice, 0.5 s by default.
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
