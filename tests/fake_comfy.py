"""A local ComfyUI server for tests: ComfyUI's real HTTP and WebSocket protocol, no models.

Speaks what ComfyUI's `server.py` and `main.py` speak, on one port:
`POST /prompt` (validated, queued in order, 400 with `node_errors` when
invalid), `GET /ws?clientId=` (status, execution_start, execution_cached,
executing, progress, executed, execution_success / execution_error, and
`executing` with `node: null` once the history entry exists), `GET /history`,
`GET /history/{prompt_id}`, `GET /view`, `GET /prompt`, `GET /queue`, also
under `/api`. Nodes really render PNGs with Pillow (see `fake_comfy_nodes`).

Faults for tests: `fail(path, status)` answers an error status, `drop(path)`
closes the connection without an answer, `stall(path)` holds a request until
`release()` (a client timeout, without sleeping), `hold_queue()` keeps
prompts queued, `drop_websockets` cuts every socket when a prompt starts.

Run it by hand: `python tests/fake_comfy.py --port 8188`.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import socket
import sys
import tempfile
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.protocol import State
from websockets.server import ServerProtocol

from fake_comfy_nodes import execute_prompt, validate_prompt


@dataclass
class Fault:
    path: str
    action: str  # "status", "drop" or "stall"
    times: int
    status: int = 500
    method: str | None = None


class WebSocketClient:
    """One `/ws` connection, framed with websockets' sans-I/O protocol."""

    def __init__(self, sock: socket.socket, rfile: Any, protocol: ServerProtocol) -> None:
        self.sock, self.rfile, self.protocol = sock, rfile, protocol
        self.lock = threading.Lock()

    def send_json(self, message: dict[str, Any]) -> None:
        with self.lock:
            if self.protocol.state is State.OPEN:
                self.protocol.send_text(json.dumps(message).encode())
                self._flush()

    def _flush(self) -> None:
        for chunk in self.protocol.data_to_send():
            try:
                if chunk:
                    self.sock.sendall(chunk)
                else:
                    self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                return

    def serve(self) -> None:
        """Answer pings and the closing handshake until the client goes away."""
        while self.protocol.state is not State.CLOSED:
            try:
                data = self.rfile.read1(65536)
            except (OSError, ValueError):
                data = b""
            with self.lock:
                if data:
                    self.protocol.receive_data(data)
                else:
                    self.protocol.receive_eof()
                self.protocol.events_received()
                self._flush()
            if not data:
                return

    def drop(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class FakeComfy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        super().__init__((host, port), _Handler)
        self._tmp = tempfile.TemporaryDirectory(prefix="fake-comfy-", ignore_cleanup_errors=True)
        self.output_dir = os.path.join(self._tmp.name, "output")
        os.makedirs(self.output_dir)
        self.lock = threading.Lock()
        self.history: dict[str, dict[str, Any]] = {}
        self.sockets: dict[str, WebSocketClient] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) as received
        self.prompts: list[dict[str, Any]] = []  # every accepted POST /prompt body
        self.faults: list[Fault] = []
        self.released = threading.Event()
        self.stopping = False
        self.queue_open = threading.Event()
        self.queue_open.set()
        self.drop_websockets = False
        self.number = 0
        self.client_id: str | None = None
        self._queue: queue.Queue[tuple[Any, ...] | None] = queue.Queue()
        self._pending = 0
        self._own_threads = [threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True),
                             threading.Thread(target=self._worker, daemon=True)]

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeComfy:
        for thread in self._own_threads:
            thread.start()
        return self

    def stop(self) -> None:
        self.stopping = True
        self.released.set()
        self.shutdown()
        self._queue.put(None)
        self.queue_open.set()
        self._own_threads[1].join()
        for client in list(self.sockets.values()):
            client.drop()
        self.server_close()
        self._tmp.cleanup()

    def __enter__(self) -> FakeComfy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- faults ---------------------------------------------------------------------

    def fail(self, path: str, status: int = 500, times: int = 1, method: str | None = None) -> None:
        self.faults.append(Fault(path, "status", times, status, method))

    def drop(self, path: str, times: int = 1, method: str | None = None) -> None:
        self.faults.append(Fault(path, "drop", times, method=method))

    def stall(self, path: str, times: int = 1, method: str | None = None) -> None:
        self.faults.append(Fault(path, "stall", times, method=method))

    def release(self) -> None:
        self.released.set()

    def hold_queue(self) -> None:
        self.queue_open.clear()

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if path.startswith(fault.path) and fault.method in (None, method) and fault.times:
                    fault.times -= 1
                    return fault
        return None

    # --- messages and the queue ----------------------------------------------------

    def send(self, event: str, data: dict[str, Any], sid: str | None) -> None:
        """`PromptServer.send_json`: to one client id, or to everyone when sid is None."""
        message = {"type": event, "data": data}
        targets = list(self.sockets.values()) if sid is None else [self.sockets.get(sid)]
        for client in targets:
            if client is not None:
                client.send_json(message)

    def queue_info(self) -> dict[str, Any]:
        return {"exec_info": {"queue_remaining": self._pending}}

    def queue_updated(self) -> None:
        self.send("status", {"status": self.queue_info()}, None)

    def submit(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if "prompt" not in body:
            return 400, {"error": {"type": "no_prompt", "message": "No prompt provided",
                                   "details": "No prompt provided", "extra_info": {}},
                         "node_errors": {}}
        prompt = body["prompt"]
        valid, error, outputs, node_errors = validate_prompt(prompt)
        if not valid:
            return 400, {"error": error, "node_errors": node_errors}
        with self.lock:
            number = self.number
            self.number += 1
            self._pending += 1
        extra = dict(body.get("extra_data") or {})
        if "client_id" in body:
            extra["client_id"] = body["client_id"]
        prompt_id = str(uuid.uuid4())
        self.prompts.append(body)
        self._queue.put((number, prompt_id, prompt, extra, outputs))
        self.queue_updated()
        return 200, {"prompt_id": prompt_id, "number": number, "node_errors": node_errors}

    def _worker(self) -> None:
        while (item := self._queue.get()) is not None:
            self.queue_open.wait()
            self._execute(*item)

    def _execute(self, number: int, prompt_id: str, prompt: dict[str, Any],
                 extra: dict[str, Any], outputs: list[str]) -> None:
        sid = self.client_id = extra.get("client_id")
        if self.drop_websockets:
            for client in list(self.sockets.values()):
                client.drop()
        ui_outputs, success, messages = execute_prompt(
            self.output_dir, prompt_id, prompt, outputs,
            lambda event, data: self.send(event, data, sid) if sid is not None else None)
        with self.lock:
            self.history[prompt_id] = {
                "prompt": [number, prompt_id, prompt, extra, outputs],
                "outputs": ui_outputs,
                "status": {"status_str": "success" if success else "error",
                           "completed": success, "messages": messages},
                "meta": {n: {"node_id": n, "display_node": n, "parent_node": None,
                             "real_node_id": n} for n in ui_outputs},
            }
            self._pending -= 1
        self.queue_updated()
        self.send("executing", {"node": None, "prompt_id": prompt_id}, sid)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server: FakeComfy

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _route(self, method: str) -> None:
        parts = urlsplit(self.path)
        path = parts.path[4:] if parts.path.startswith("/api/") else parts.path
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        self.server.requests.append((method, path))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fault = self.server.take_fault(method, path)
        if fault is not None and fault.action == "drop":
            self.close_connection = True
            return
        if fault is not None and fault.action == "stall":
            self.server.released.wait()
            if self.server.stopping:  # the client gave up long ago; just hang up
                self.close_connection = True
                return
        if fault is not None and fault.action == "status":
            self._send(fault.status, f"{fault.status} Injected Error\n\nServer got itself in "
                       "trouble".encode(), "text/plain; charset=utf-8")
            return
        if method == "GET" and path == "/ws":
            self._websocket(query.get("clientId") or uuid.uuid4().hex)
        elif method == "POST" and path == "/prompt":
            try:
                status, answer = self.server.submit(json.loads(body))
            except ValueError:
                self._send(500, b"500 Internal Server Error", "text/plain; charset=utf-8")
                return
            self._json(answer, status)
        elif method == "GET" and path.startswith("/history"):
            prompt_id = path[len("/history/"):] if path.startswith("/history/") else None
            with self.server.lock:
                found = {k: v for k, v in self.server.history.items()
                         if prompt_id is None or k == prompt_id}
                self._json(json.loads(json.dumps(found)))
        elif method == "GET" and path == "/view":
            self._view(query)
        elif method == "GET" and path == "/prompt":
            self._json(self.server.queue_info())
        elif method == "GET" and path == "/queue":
            self._json({"queue_running": [], "queue_pending": []})
        else:
            self._send(404, b"404: Not Found", "text/plain; charset=utf-8")

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def _view(self, query: dict[str, str]) -> None:
        filename = query.get("filename", "")
        if not filename or filename[0] == "/" or ".." in filename:
            self._send(400, b"", "text/plain")
            return
        kind = query.get("type", "output")
        root = os.path.abspath(os.path.join(self.server.output_dir, "..", kind))
        folder = os.path.abspath(os.path.join(root, query.get("subfolder", "")))
        if os.path.commonpath((folder, root)) != root:
            self._send(403, b"", "text/plain")
            return
        file = os.path.join(folder, os.path.basename(filename))
        if not os.path.isfile(file):
            self._send(404, b"404: Not Found", "text/plain; charset=utf-8")
            return
        with open(file, "rb") as f:
            self._send(200, f.read(), "image/png",
                       {"Content-Disposition": f'filename="{os.path.basename(file)}"'})

    def _websocket(self, sid: str) -> None:
        raw = self.raw_requestline + b"".join(
            f"{k}: {v}\r\n".encode("latin-1") for k, v in self.headers.items()) + b"\r\n"
        protocol = ServerProtocol()
        protocol.receive_data(raw)
        response = protocol.accept(protocol.events_received()[0])
        protocol.send_response(response)
        client = WebSocketClient(self.connection, self.rfile, protocol)
        client._flush()
        self.close_connection = True
        if response.status_code != 101:
            return
        self.server.sockets[sid] = client
        client.send_json({"type": "status", "data": {"status": self.server.queue_info(),
                                                     "sid": sid}})
        try:
            client.serve()
        finally:
            if self.server.sockets.get(sid) is client:
                del self.server.sockets[sid]

    def _json(self, data: Any, status: int = 200) -> None:
        self._send(status, json.dumps(data).encode(), "application/json; charset=utf-8")

    def _send(self, status: int, body: bytes, content_type: str,
              headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            self.close_connection = True  # the client gave up (a stalled request timed out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8188)
    args = parser.parse_args()
    server = FakeComfy(args.port, args.host).start()
    print(f"fake ComfyUI at {server.url} (outputs in {server.output_dir})", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
