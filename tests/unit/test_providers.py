"""`mb.providers.ProviderClient` against a real local HTTP server that follows a script."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import mb
from mb.providers import CircuitOpenError, ProviderClient, ProviderHTTPError, provider_settings

SECRET = "sk-test-0123456789-SECRET"


class ScriptedServer(ThreadingHTTPServer):
    """Answers each request with the next scripted step; 200 `{"ok": true}` when none is left.

    A step is `(status, body)`, `(status, body, headers)`, `"drop"` (close
    without answering) or `"stall"` (hold the request until the test ends).
    """

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script: list[Any] = []
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.released = threading.Event()
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def next_step(self) -> Any:
        with self.lock:
            return self.script.pop(0) if self.script else (200, {"ok": True})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: ScriptedServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests.append((self.command, self.path, dict(self.headers), body))
        step = self.server.next_step()
        if step == "drop":
            self.close_connection = True
            return
        if step == "stall":
            self.server.released.wait()
            self.close_connection = True
            return
        status, payload, *rest = step
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        # The server echoes the Authorization header in its errors: mb must redact it.
        data = data.replace(b"$AUTH", self.headers.get("Authorization", "").encode())
        self.send_response(status)
        for name, value in (rest[0] if rest else {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    srv = ScriptedServer()
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.released.set()
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on: the OS just handed it out and it was closed again."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


class Recorder:
    """An ActionIO whose events can be read back."""

    def __init__(self, root: Path, state_dir: Path | None) -> None:
        self.channel = io.StringIO()
        self.io = mb.ActionIO(root=root, inputs=[], outputs=[], tools=[], params={},
                              providers={}, channel=self.channel, state_dir=state_dir)

    @property
    def text(self) -> str:
        return self.channel.getvalue()

    def events(self, type: str | None = None) -> list[dict[str, Any]]:
        records = [json.loads(line) for line in self.text.splitlines()]
        return [r for r in records if r["kind"] == "event" and type in (None, r["type"])]


@pytest.fixture
def rec(tmp_path: Path) -> Recorder:
    return Recorder(tmp_path, tmp_path / "state")


def client(rec: Recorder, url: str, **kwargs: Any) -> ProviderClient:
    provider = kwargs.pop("provider", "tts")
    options: dict[str, Any] = {"timeout": 5.0, "retries": 2, "backoff": 0.0, **kwargs}
    return ProviderClient(rec.io, provider, url, **options)


def test_success_returns_the_response_and_emits_sizes_and_timing(server, rec):
    server.script = [(200, {"audio": "x" * 100})]
    with client(rec, server.url) as c:
        response = c.request("POST", "/v1/audio/speech", json={"input": "hello"})
    assert response.json() == {"audio": "x" * 100}
    assert server.requests[0][3] == b'{"input":"hello"}'
    [sent] = rec.events("provider.request")
    [received] = rec.events("provider.response")
    assert sent["data"] == {"provider": "tts", "method": "POST", "path": "/v1/audio/speech",
                            "attempt": 1, "bytes_sent": len(b'{"input":"hello"}')}
    assert received["data"]["status"] == 200
    assert received["data"]["bytes_received"] == len(response.content)
    assert received["data"]["duration_s"] >= 0


def test_the_query_string_never_reaches_an_event(server, rec):
    with client(rec, server.url) as c:
        c.request("GET", "/view", params={"filename": "a.png", "key": "hunter2-hunter2"})
    assert server.requests[0][1] == "/view?filename=a.png&key=hunter2-hunter2"
    assert {e["data"]["path"] for e in rec.events()} == {"/view"}
    assert "hunter2" not in rec.text


def test_a_5xx_is_retried_and_then_succeeds(server, rec):
    server.script = [(500, b"Internal Server Error"), (502, b"bad gateway"), (200, {"ok": 1})]
    with client(rec, server.url) as c:
        assert c.request("GET", "/health").json() == {"ok": 1}
    assert [e["data"]["status"] for e in rec.events("provider.response")] == [500, 502, 200]
    assert [e["data"]["attempt"] for e in rec.events("provider.request")] == [1, 2, 3]
    assert rec.events("breaker.opened") == []


def test_a_4xx_fails_at_once_naming_provider_method_path_status_and_server_message(server, rec):
    server.script = [(404, {"error": {"message": "voice 'zz' not found", "type": "invalid"}})]
    with client(rec, server.url) as c, pytest.raises(ProviderHTTPError) as caught:
        c.request("POST", "/v1/audio/speech", json={"voice": "zz"})
    assert str(caught.value) == ("provider 'tts': POST /v1/audio/speech answered 404 Not Found: "
                                 "voice 'zz' not found")
    assert caught.value.retryable is False
    assert caught.value.status == 404
    assert caught.value.body == {"error": {"message": "voice 'zz' not found", "type": "invalid"}}
    assert len(server.requests) == 1


def test_exhausted_retries_are_a_retryable_error(server, rec):
    server.script = [(503, {"detail": "overloaded"})] * 3
    with client(rec, server.url, retries=2) as c, pytest.raises(mb.ActionError) as caught:
        c.request("POST", "/v1/audio/speech")
    assert caught.value.retryable is True
    assert str(caught.value) == (f"provider 'tts': POST /v1/audio/speech to {server.url} failed "
                                 "after 3 attempts: status 503 Service Unavailable: overloaded")
    assert len(server.requests) == 3


def test_429_is_retried_after_the_servers_retry_after(server, rec):
    server.script = [(429, {"error": "slow down"}, {"Retry-After": "0"}), (200, {"ok": 2})]
    with client(rec, server.url) as c:
        assert c.request("GET", "/x").json() == {"ok": 2}
    assert len(server.requests) == 2


def test_a_timeout_is_retried_then_reported(server, rec):
    server.script = ["stall", "stall"]
    with client(rec, server.url, timeout=0.2, retries=1) as c, \
            pytest.raises(mb.ActionError) as caught:
        c.request("GET", "/slow")
    assert "failed after 2 attempts: timed out (ReadTimeout)" in str(caught.value)
    assert caught.value.retryable is True
    assert [e["data"]["error"] for e in rec.events("provider.response")] == [
        "timed out (ReadTimeout)"] * 2


def test_a_dropped_connection_is_retried(server, rec):
    server.script = ["drop", (200, {"ok": 3})]
    with client(rec, server.url) as c:
        assert c.request("GET", "/x").json() == {"ok": 3}
    assert "RemoteProtocolError" in rec.events("provider.response")[0]["data"]["error"]


def test_the_breaker_opens_after_n_consecutive_failures_and_then_fails_fast(rec, closed_port):
    url = f"http://127.0.0.1:{closed_port}"
    with client(rec, url, provider="comfy", retries=1, breaker_threshold=3) as c:
        with pytest.raises(mb.ActionError, match="failed after 2 attempts: cannot connect"):
            c.request("POST", "/prompt")
        assert rec.events("breaker.opened") == []
        with pytest.raises(CircuitOpenError, match="circuit open after 3 consecutive failures"):
            c.request("POST", "/prompt")
        [opened] = rec.events("breaker.opened")
        assert opened["data"]["provider"] == "comfy"
        assert opened["data"]["failures"] == 3
        sent = len(rec.events("provider.request"))
        with pytest.raises(CircuitOpenError) as caught:
            c.request("POST", "/prompt")
    assert str(caught.value) == ("provider 'comfy' is unavailable: circuit open after 3 "
                                 "consecutive failures; retrying after 30 s")
    assert caught.value.retryable is True
    assert len(rec.events("provider.request")) == sent  # failed fast: nothing was sent


def test_breaker_state_is_shared_by_every_process_through_the_state_dir(tmp_path, closed_port):
    url = f"http://127.0.0.1:{closed_port}"
    first = Recorder(tmp_path, tmp_path / "state")
    with client(first, url, provider="comfy", retries=0, breaker_threshold=1) as c:
        with pytest.raises(CircuitOpenError):
            c.request("GET", "/x")
    state = json.loads((tmp_path / "state" / "breakers" / "comfy.json").read_text())
    assert state["failures"] == 1 and state["opened_at"] is not None
    second = Recorder(tmp_path, tmp_path / "state")
    with client(second, url, provider="comfy") as c, pytest.raises(CircuitOpenError):
        c.request("GET", "/x")
    assert second.events("provider.request") == []
    code = (
        "import io, mb, pathlib, sys\n"
        "from mb.providers import ProviderClient, CircuitOpenError\n"
        f"a = mb.ActionIO(pathlib.Path('.'), [], [], [], {{}}, {{}}, io.StringIO(), "
        f"state_dir=pathlib.Path({str(tmp_path / 'state')!r}))\n"
        f"c = ProviderClient(a, 'comfy', {url!r})\n"
        "try:\n    c.request('GET', '/x')\nexcept CircuitOpenError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    expected = "provider 'comfy' is unavailable: circuit open after 1 "
    assert out.stdout.startswith(expected), out.stderr


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_after_the_cooldown_a_successful_trial_closes_the_breaker(server, rec):
    clock = Clock()
    server.script = [(500, b"down"), (500, b"down")]
    with client(rec, server.url, retries=0, breaker_threshold=2, breaker_cooldown=30.0,
                clock=clock) as c:
        for _ in range(2):
            with pytest.raises(mb.ActionError):
                c.request("GET", "/x")
        with pytest.raises(CircuitOpenError, match="retrying after 30 s"):
            c.request("GET", "/x")
        clock.now += 29.5
        with pytest.raises(CircuitOpenError, match="retrying after 1 s"):
            c.request("GET", "/x")
        clock.now += 1
        assert c.request("GET", "/x").json() == {"ok": True}
        assert c.request("GET", "/x").json() == {"ok": True}
    assert [e["type"] for e in rec.events() if e["type"].startswith("breaker")] == [
        "breaker.opened", "breaker.closed"]
    assert len(server.requests) == 4


def test_a_failed_trial_opens_the_breaker_again(server, rec):
    clock = Clock()
    server.script = [(500, b"down")] * 2
    with client(rec, server.url, retries=0, breaker_threshold=1, clock=clock) as c:
        with pytest.raises(CircuitOpenError):
            c.request("GET", "/x")
        clock.now += 31
        with pytest.raises(CircuitOpenError, match="circuit open after 2 consecutive failures"):
            c.request("GET", "/x")
        with pytest.raises(CircuitOpenError, match="retrying after 30 s"):
            c.request("GET", "/x")
    assert len(rec.events("breaker.opened")) == 2
    assert len(server.requests) == 2


def test_a_4xx_proves_the_server_is_up_and_resets_the_failure_count(server, rec):
    server.script = [(500, b"x"), (400, {"error": "bad"}), (500, b"x")]
    with client(rec, server.url, retries=0, breaker_threshold=2) as c:
        for _ in range(3):
            with pytest.raises(mb.ActionError) as caught:
                c.request("GET", "/x")
            assert not isinstance(caught.value, CircuitOpenError)
    assert rec.events("breaker.opened") == []


def test_without_a_state_dir_the_breaker_lives_in_the_process(tmp_path, closed_port):
    url = f"http://127.0.0.1:{closed_port}"
    first, second = Recorder(tmp_path, None), Recorder(tmp_path, None)
    with client(first, url, provider="memory-test", retries=0, breaker_threshold=1) as c:
        with pytest.raises(CircuitOpenError):
            c.request("GET", "/x")
    with client(second, url, provider="memory-test") as c, pytest.raises(CircuitOpenError):
        c.request("GET", "/x")
    assert second.events("provider.request") == []
    assert not (tmp_path / "breakers").exists()


def test_the_authorization_value_never_appears_in_an_event_or_a_message(server, rec):
    server.script = [(200, {"ok": 1}), (401, {"error": {"message": "bad key $AUTH"}}),
                     (500, {"error": "upstream refused $AUTH"}), (500, b"again $AUTH")]
    messages = []
    with client(rec, server.url, retries=1, headers={"Authorization": f"Bearer {SECRET}"}) as c:
        c.request("GET", "/ok")
        for _ in range(2):
            with pytest.raises(mb.ActionError) as caught:
                c.request("POST", "/v1/audio/speech", headers={"X-Api-Key": SECRET})
            messages.append(str(caught.value))
    assert server.requests[0][2]["Authorization"] == f"Bearer {SECRET}"
    assert messages[0].endswith("answered 401 Unauthorized: bad key ***")
    assert messages[1].endswith("status 500 Internal Server Error: again ***")
    assert len(rec.events()) == 8
    assert SECRET not in rec.text and "Bearer" not in rec.text
    assert all(SECRET not in m for m in messages)


def test_a_url_without_http_scheme_is_a_clear_non_retryable_error(rec):
    with pytest.raises(mb.ActionError) as caught:
        ProviderClient(rec.io, "comfy", "localhost:8188")
    assert str(caught.value) == ("provider 'comfy' needs an http:// or https:// url, got "
                                 "'localhost:8188'; set [providers.comfy] url in MB.toml")
    assert caught.value.retryable is False


def test_websocket_to_a_dead_server_is_retried_and_reported(rec, closed_port):
    with client(rec, f"http://127.0.0.1:{closed_port}", provider="comfy", retries=1) as c, \
            pytest.raises(mb.ActionError, match=r"GET /ws to .* failed after 2 attempts"):
        c.websocket("/ws", {"clientId": "abc"})
    assert [e["data"]["websocket"] for e in rec.events("provider.request")] == [True, True]


def test_provider_settings_are_typed_and_keep_unknown_keys(tmp_path):
    def settings(values: dict[str, Any], **defaults: Any) -> Any:
        io_ = mb.ActionIO(tmp_path, [], [], [], {}, {"p": values})
        return provider_settings(io_, "p", **defaults)

    s = settings({"url": "http://h:1", "timeout": 5, "wait_timeout": 9}, retries=1)
    assert (s.url, s.timeout, s.retries, s.breaker_threshold) == ("http://h:1", 5.0, 1, 5)
    assert s.extra == {"wait_timeout": 9}
    with pytest.raises(mb.ActionError, match=r"\[providers.p\] timeout must be a number >= 0, "
                                             r"got 'fast'") as caught:
        settings({"timeout": "fast"})
    assert caught.value.retryable is False
    with pytest.raises(mb.ActionError, match="retries must be a whole number >= 0, got 1.5"):
        settings({"retries": 1.5})
