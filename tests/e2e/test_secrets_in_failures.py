"""A failed action's message and stderr never show the values of its `secret_env`
(SPEC §3: secrets never enter an event, a log line or a manifest)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PLUGIN = Path(__file__).resolve().parent / "plugin_modules" / "leaky_secret.py"
SECRET = "sk-test-4f1c9a77e2b04d5c"


def everything_written(ws, result) -> str:
    """stdout, stderr and every file mb wrote under .mb/ and mb-out/: events, manifests,
    the cache, and the sandbox directories (an action declaring secret_env leaves no
    stderr file behind there)."""
    texts = [result.stdout, result.stderr]
    for base in (ws.path / ".mb", ws.path / "mb-out"):
        for path in base.rglob("*"):
            if path.is_file():
                texts.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(texts)


def leaky_workspace(mb_workspace, retries: int = 0):
    ws = mb_workspace({"plug/leaky_secret.py": PLUGIN.read_text(), "p/BUILD.toml":
                       f'[t]\nrule = "leaky"\nvar = "LEAKY_KEY"\nretries = {retries}\n'})
    # `-p leaky_secret` imports it from plug/ (kept before whatever PYTHONPATH had).
    ws.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ws.path / "plug"),
                                                         ws.env.get("PYTHONPATH")]))
    return ws


def test_a_secret_in_a_python_actions_failure_is_replaced(mb_workspace):
    ws = leaky_workspace(mb_workspace, retries=1)
    result = ws.run("-p", "leaky_secret", "build", env={"LEAKY_KEY": SECRET})
    assert result.exit_code == 1
    assert SECRET not in everything_written(ws, result)
    assert "content type 'Bearer ***'" in result.stdout + result.stderr
    events = ws.last_build_events()
    (failed,) = [e for e in events if e["type"] == "action.failed"]
    assert failed["data"]["error"] == "the server answered with content type 'Bearer ***'"
    assert "sending Authorization: Bearer ***" in failed["data"]["stderr_tail"]
    (retry,) = [e for e in events if e["type"] == "action.retry"]
    assert "Bearer ***" in retry["data"]["error"]
    notes = [e for e in events if e["type"] == "leaky.note"]
    assert notes and all(e["data"]["header"] == "Bearer ***" for e in notes)


def test_each_long_part_of_a_secret_is_replaced_too(mb_workspace):
    """A value with spaces ("Bearer <key>" kept whole in one variable): the key alone,
    echoed without the rest, is hidden as well."""
    ws = leaky_workspace(mb_workspace)
    result = ws.run("-p", "leaky_secret", "build", env={"LEAKY_KEY": f"Token {SECRET}"})
    assert result.exit_code == 1
    assert SECRET not in everything_written(ws, result)
    assert "Bearer Token ***" not in result.stdout + result.stderr
    assert "Bearer ***" in result.stdout + result.stderr


@contextmanager
def echoing_server() -> Iterator[str]:
    """Answers every POST with 200, a body that is not a WAV file and, as content
    type, the Authorization header it was sent (a misconfigured proxy does that)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers.get("content-length", 0)))
            body = b"not audio"
            self.send_response(200)
            self.send_header("Content-Type", self.headers.get("Authorization", ""))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_tts_against_a_server_echoing_the_key_does_not_print_it(mb_workspace):
    with echoing_server() as url:
        ws = mb_workspace({
            "MB.toml": f'[providers.tts]\nengine = "openai"\nbase_url = "{url}"\n'
                       'api_key_env = "TEST_TTS_KEY"\n',
            "a/BUILD.toml": '[intro]\nrule = "tts"\ntext = "hello"\n',
        })
        result = ws.run("build", env={"TEST_TTS_KEY": SECRET})
    assert result.exit_code == 1
    assert SECRET not in everything_written(ws, result)
    assert "with Bearer ***, not a WAV file" in result.stdout + result.stderr
    manifest = json.loads((ws.path / ".mb" / "builds" /
                           (ws.path / ".mb" / "builds" / "current").read_text().strip()
                           ).with_suffix(".json").read_text())
    assert "Bearer ***" in json.dumps(manifest)


def test_a_secret_deep_in_an_event_or_in_metadata_is_replaced(mb_workspace):
    """Events go to the log and metadata into the cache (which may be shared): every
    string in them, at any depth and in keys, has the secret replaced."""
    ws = mb_workspace({"plug/leaky_secret.py": PLUGIN.read_text(), "p/BUILD.toml":
                       '[t]\nrule = "leaky"\nvar = "LEAKY_KEY"\nfail = false\n'})
    ws.env["PYTHONPATH"] = str(ws.path / "plug")
    result = ws.run("-p", "leaky_secret", "build", env={"LEAKY_KEY": SECRET})
    assert result.exit_code == 0, result.stderr
    assert SECRET not in everything_written(ws, result)
    (note,) = [e for e in ws.last_build_events() if e["type"] == "leaky.note"]
    assert note["data"]["request"] == {"headers": {"Authorization": "Bearer ***"},
                                       "args": ["--key", "***"]}


URL_READER = Path(__file__).resolve().parent / "plugin_modules" / "url_reader.py"
PASSWORD = "PWSEKRIT-9999-lion"


def url_reader_workspace(mb_workspace, fail: bool):
    ws = mb_workspace({"plug/url_reader.py": URL_READER.read_text(),
                       "MB.toml": '[providers.comfy]\nurl = "http://127.0.0.1:1"\n',
                       "p/BUILD.toml": f'[t]\nrule = "url_reader"\nfail = {str(fail).lower()}\n'})
    ws.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ws.path / "plug"),
                                                         ws.env.get("PYTHONPATH")]))
    return ws


def test_a_password_in_mb_comfy_url_reaches_the_action_and_nothing_on_disk(mb_workspace):
    """The worker gets MB_COMFY_URL in its environment, not in the spec file it
    reads (which used to stay in .mb/tmp/ with the password in it)."""
    ws = url_reader_workspace(mb_workspace, fail=False)
    url = f"http://comfyuser:{PASSWORD}@127.0.0.2:8188"
    result = ws.run("-p", "url_reader", "build", env={"MB_COMFY_URL": url})
    assert result.exit_code == 0, result.stderr
    assert ws.out("p/t.txt").read_text() == "host=127.0.0.2 has_password=True\n"
    assert PASSWORD not in everything_written(ws, result)
    assert not list((ws.path / ".mb").glob("tmp/call-*")), "the spec file is removed"
    note = [e for e in ws.last_build_events() if e["type"].startswith("reader.")]
    assert [(e["type"], e["level"], e["data"]) for e in note] == [
        ("reader.***", "info", {"note": "pw=***"})]


def test_a_password_in_mb_comfy_url_is_hidden_in_a_failure(mb_workspace):
    ws = url_reader_workspace(mb_workspace, fail=True)
    url = f"http://comfyuser:{PASSWORD}@127.0.0.2:8188"
    result = ws.run("-p", "url_reader", "build", env={"MB_COMFY_URL": url})
    assert result.exit_code == 1
    assert "FAILED //p:t: the server refused password ***" in result.stderr
    assert PASSWORD not in everything_written(ws, result)


def test_the_none_sandbox_hides_provider_keys_from_every_action(mb_workspace):
    """`none` hands every action the host's environment, commands included, so the
    keys MB.toml names (`api_key_env`) are hidden in every action's messages and
    no action's stderr stays on disk (under `dir` a command never sees them)."""
    ws = mb_workspace({
        "MB.toml": '[providers.tts]\nengine = "openai"\napi_key_env = "LEAKY_KEY"\n',
        "p/BUILD.toml": '[bad]\nrule = "genrule"\nouts = ["bad.txt"]\n'
                        'cmd = "echo key=$$LEAKY_KEY >&2; exit 1"\n'
                        '[good]\nrule = "genrule"\nouts = ["good.txt"]\n'
                        'cmd = "echo key=$$LEAKY_KEY >&2; touch $@"\n'})
    result = ws.run("build", "-k", "--sandbox", "none", env={"LEAKY_KEY": SECRET})
    assert result.exit_code == 1
    assert "    key=***" in result.stderr
    assert SECRET not in everything_written(ws, result)
    under_dir = ws.run("build", "-k", "//p:bad", env={"LEAKY_KEY": SECRET})
    assert "    key=\n" in under_dir.stderr or under_dir.stderr.rstrip().endswith("key=")
