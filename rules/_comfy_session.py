"""One run of a workflow on a ComfyUI server: queue it, follow it, fetch its images.

The protocol is ComfyUI's own (`server.py`): open `/ws?clientId=ID` first so
no message is missed, `POST /prompt`, read messages until `executing` with
`node: null` for our prompt id (sent after the history entry is written),
then `GET /history/{prompt_id}` and `GET /view` for each saved image. If the
socket drops or cannot be opened, the history is polled instead.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Final

import mb
from mb.providers import ProviderClient, ProviderHTTPError

from ._comfy_workflow import (
    PNG_SIGNATURE,
    Workflow,
    describe_execution_error,
    describe_rejection,
    output_images,
)

_POLL_FIRST: Final = 0.05
_POLL_MAX: Final = 2.0


class ComfySession:
    """Runs workflows through one `ProviderClient`; `wait_timeout` bounds each run."""

    def __init__(self, client: ProviderClient, io: mb.ActionIO, wait_timeout: float) -> None:
        self.client, self.io, self.wait_timeout = client, io, wait_timeout

    def run(self, workflow: Workflow, name: str) -> list[bytes]:
        """The PNG bytes of every image the workflow saved, in `output_images` order."""
        client_id = uuid.uuid4().hex
        deadline = time.monotonic() + self.wait_timeout
        ws = self._open_socket(client_id)
        try:
            prompt_id = self._queue(workflow, client_id, name)
            ws_error = self._follow(ws, prompt_id, deadline) if ws is not None else None
        finally:
            if ws is not None:
                ws.close()
        entry = self._history(prompt_id, deadline)
        status = entry.get("status") or {}
        if status.get("status_str") == "error" or status.get("completed") is False:
            raise self._failure(status, ws_error, name)
        images = output_images(entry.get("outputs") or {})
        return [self._download(image) for image in images]

    def _open_socket(self, client_id: str) -> Any:
        try:
            return self.client.websocket("/ws", {"clientId": client_id})
        except ProviderHTTPError as exc:
            # A proxy that refuses WebSocket upgrades: poll the history instead.
            self.io.emit("comfy.websocket_unavailable", status=exc.status)
            return None

    def _queue(self, workflow: Workflow, client_id: str, name: str) -> str:
        try:
            answer = self.client.request("POST", "/prompt",
                                         json={"prompt": workflow, "client_id": client_id}).json()
        except ProviderHTTPError as exc:
            if exc.status == 400:
                raise mb.ActionError(f"ComfyUI rejected workflow {name}: "
                                     f"{describe_rejection(exc.body, workflow)}",
                                     retryable=False) from None
            raise
        except ValueError:
            raise mb.ActionError("ComfyUI answered POST /prompt with something that is not JSON",
                                 retryable=True) from None
        prompt_id = answer.get("prompt_id") if isinstance(answer, dict) else None
        if not isinstance(prompt_id, str):
            raise mb.ActionError(f"ComfyUI answered POST /prompt without a prompt_id: {answer!r}",
                                 retryable=True)
        if answer.get("node_errors"):
            # ComfyUI queued only the outputs that validated and dropped the rest;
            # half a workflow's images under the whole one's name would be a lie.
            raise mb.ActionError(f"ComfyUI rejected part of workflow {name}: "
                                 f"{describe_rejection(answer, workflow)}", retryable=False)
        self.io.emit("comfy.queued", prompt_id=prompt_id, number=answer.get("number"))
        return prompt_id

    def _follow(self, ws: Any, prompt_id: str, deadline: float) -> dict[str, Any] | None:
        """Read messages until our prompt is done; returns its `execution_error` data, if any.

        A dropped socket ends this early; the history poll then waits instead.
        """
        from websockets.exceptions import ConnectionClosed

        error = None
        last_quarter = -1
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._too_slow(prompt_id)
            try:
                raw = ws.recv(timeout=remaining)
            except TimeoutError:
                continue
            except ConnectionClosed:
                self.io.emit("comfy.websocket_closed", level="warning", prompt_id=prompt_id)
                return error
            if isinstance(raw, bytes):
                continue  # a binary preview image
            try:
                message = json.loads(raw)
                kind, data = message["type"], message.get("data") or {}
            except (ValueError, KeyError, TypeError):
                continue
            if data.get("prompt_id") != prompt_id:
                continue
            if kind == "execution_error":
                error = data
            elif kind == "progress" and data.get("max"):
                quarter = int(4 * data["value"] / data["max"])
                if quarter != last_quarter:  # a few events per node, not one per step
                    last_quarter = quarter
                    self.io.emit("comfy.progress", prompt_id=prompt_id, node=data.get("node"),
                                 value=data["value"], max=data["max"])
            elif kind == "executing" and data.get("node") is None:
                return error

    def _history(self, prompt_id: str, deadline: float) -> dict[str, Any]:
        delay = _POLL_FIRST
        while True:
            answer = self.client.request("GET", f"/history/{prompt_id}").json()
            if isinstance(answer, dict) and isinstance(answer.get(prompt_id), dict):
                return answer[prompt_id]
            if time.monotonic() + delay > deadline:
                raise self._too_slow(prompt_id)
            time.sleep(delay)  # nothing to wait on without a socket
            delay = min(delay * 1.5, _POLL_MAX)

    def _failure(self, status: dict[str, Any], ws_error: dict[str, Any] | None,
                 name: str) -> mb.ActionError:
        error = ws_error
        interrupted = False
        for message in status.get("messages") or []:
            if isinstance(message, list) and len(message) == 2:
                if message[0] == "execution_error":
                    error = message[1]
                interrupted = interrupted or message[0] == "execution_interrupted"
        if error is not None:
            # Out of memory may pass when the GPU is less busy; other node errors will not.
            oom = "OutOfMemory" in str(error.get("exception_type", ""))
            return mb.ActionError(f"ComfyUI failed running workflow {name} at "
                                  f"{describe_execution_error(error)}", retryable=oom)
        if interrupted:
            return mb.ActionError(f"ComfyUI run of workflow {name} was interrupted on the server",
                                  retryable=True)
        return mb.ActionError(f"ComfyUI run of workflow {name} ended with status "
                              f"{status.get('status_str')!r} and no error message", retryable=True)

    def _download(self, image: dict[str, str]) -> bytes:
        params = {"filename": image.get("filename", ""), "subfolder": image.get("subfolder", ""),
                  "type": image.get("type", "output")}
        data = self.client.request("GET", "/view", params=params).content
        if not data.startswith(PNG_SIGNATURE):
            raise mb.ActionError(f"ComfyUI image {params['filename']!r} is not a PNG; save images "
                                 "with SaveImage", retryable=False)
        return data

    def _too_slow(self, prompt_id: str) -> mb.ActionError:
        return mb.ActionError(
            f"ComfyUI did not finish prompt {prompt_id} within {self.wait_timeout:g} s; raise "
            "[providers.comfy] wait_timeout if the workflow is just slow", retryable=True)
