"""`mb.providers`: reliable HTTP to the services a rule calls (ComfyUI, a TTS API, ...).

Every provider plugin gets the same behaviour from `ProviderClient`: retries
with exponential backoff and jitter on connection errors, timeouts and 5xx
answers; no retry on a 4xx, which a retry cannot fix; a circuit breaker per
provider so a dead server fails a build in seconds instead of once per target;
and `provider.request` / `provider.response` events that carry sizes and
timings but never a header, a query string or a secret.

Python actions run in one worker process each, so the breaker's state lives
in `io.state_dir/breakers/<provider>.json` behind a file lock; without a state
dir (an action called directly, as in tests) it lives in this process.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final, TypeVar

import attrs
import httpx
import tenacity
from filelock import FileLock

from websockets.exceptions import InvalidHandshake

from mb.config import redact_url
from mb.environment import basic_credentials, userinfo_secrets
from mb.masking import masked_forms, redact, redact_value
from mb.errors import ActionError

if TYPE_CHECKING:
    from websockets.sync.client import ClientConnection

    from mb.actionio import ActionIO

T = TypeVar("T")

#: Header names whose values are secrets: redacted from every message mb writes.
_SECRET_HEADER: Final = re.compile(r"auth|key|token|secret|cookie|password", re.IGNORECASE)
_MAX_MESSAGE: Final = 300


class ProviderHTTPError(ActionError):
    """A provider answered with an error status; `body` is its parsed JSON or text.

    Callers that know the service (ComfyUI's `node_errors`) catch this to
    write a better message; everyone else lets it fail the action.
    """

    def __init__(self, message: str, *, provider: str, method: str, path: str, status: int,
                 body: Any, retryable: bool = False) -> None:
        super().__init__(message, retryable=retryable)
        self.provider, self.method, self.path, self.status, self.body = (
            provider, method, path, status, body)


class CircuitOpenError(ActionError):
    """The provider's circuit is open: failing fast without sending a request."""


class _Transient(Exception):
    """One failed attempt worth retrying (connection error, timeout, 5xx, 408, 429).

    `breaker` is False for 408/429: the server is alive and asks us to slow down.
    """

    def __init__(self, message: str, retry_after: float | None = None,
                 breaker: bool = True) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.breaker = breaker


@attrs.frozen
class ProviderSettings:
    """`[providers.NAME]` settings mb itself understands; other keys stay in `extra`."""

    url: str = ""
    timeout: float = 60.0
    retries: int = 3
    breaker_threshold: int = 5
    breaker_cooldown: float = 30.0
    backoff: float = 0.5
    extra: Mapping[str, Any] = attrs.field(factory=dict)


_SETTINGS: Final = {"url": str, "timeout": float, "retries": int, "breaker_threshold": int,
                    "breaker_cooldown": float, "backoff": float}
_KIND_WORDS: Final = {str: "a string", int: "a whole number >= 0", float: "a number >= 0"}
_RETRY_STATUSES: Final = frozenset({408, 429})  # alive, but asking us to slow down


def provider_settings(io: ActionIO, provider: str, **defaults: Any) -> ProviderSettings:
    """Read and type-check `[providers.NAME]`; a wrong type is a non-retryable error.

    `defaults` are the plugin's own defaults for keys the user did not set.
    """
    raw = dict(io.provider(provider))
    values: dict[str, Any] = {}
    for name, kind in _SETTINGS.items():
        value = raw.pop(name) if name in raw else defaults.get(name)
        if value is None:
            continue
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
        if not (isinstance(value, str) if kind is str else
                number and (kind is float or isinstance(value, int))):
            raise ActionError(f"[providers.{provider}] {name} must be {_KIND_WORDS[kind]}, "
                              f"got {value!r}", retryable=False)
        values[name] = float(value) if kind is float else value
    return ProviderSettings(**values, extra=raw)


# --- circuit breaker ----------------------------------------------------------------


@attrs.define
class _BreakerState:
    url: str = ""
    failures: int = 0
    opened_at: float | None = None  # wall-clock time the circuit (re)opened
    trial_at: float | None = None  # when a half-open trial request started


_MEMORY: dict[str, _BreakerState] = {}
_MEMORY_LOCK = threading.Lock()


class CircuitBreaker:
    """Opens after `threshold` consecutive failures; after `cooldown` lets one trial through.

    State is keyed by provider and remembers the URL it was about: pointing a
    provider at another server starts from a closed circuit.
    """

    def __init__(self, io: ActionIO, provider: str, url: str, threshold: int, cooldown: float,
                 trial_timeout: float, clock: Callable[[], float] = time.time) -> None:
        self.io, self.provider, self.url = io, provider, url
        self.threshold, self.cooldown = max(1, threshold), cooldown
        self.trial_timeout, self.clock = trial_timeout, clock
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", provider)
        self.path = io.state_dir / "breakers" / f"{safe}.json" if io.state_dir else None

    @contextlib.contextmanager
    def _state(self) -> Iterator[_BreakerState]:
        if self.path is None:
            with _MEMORY_LOCK:
                state = _MEMORY.get(self.provider)
                if state is None or state.url != self.url:
                    state = _MEMORY[self.provider] = _BreakerState(url=self.url)
                yield state
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path) + ".lock"):
            try:
                state = _BreakerState(**json.loads(self.path.read_text()))
            except (OSError, ValueError, TypeError):
                state = _BreakerState(url=self.url)  # missing or unreadable: start closed
            if state.url != self.url:
                state = _BreakerState(url=self.url)
            yield state
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(attrs.asdict(state), sort_keys=True))
            os.replace(tmp, self.path)

    def before_request(self) -> None:
        """Raise `CircuitOpenError` while open; after the cooldown admit one trial at a time."""
        with self._state() as state:
            if state.opened_at is None:
                return
            now = self.clock()
            wait = state.opened_at + self.cooldown - now
            if wait > 0:
                raise CircuitOpenError(
                    f"provider {self.provider!r} is unavailable: circuit open after "
                    f"{state.failures} consecutive failures; retrying after {math.ceil(wait)} s",
                    retryable=True)
            if state.trial_at is not None and now < state.trial_at + self.trial_timeout:
                raise CircuitOpenError(
                    f"provider {self.provider!r} is unavailable: circuit half-open after "
                    f"{state.failures} consecutive failures and another action is probing it",
                    retryable=True)
            state.trial_at = now

    def record_success(self) -> None:
        with self._state() as state:
            was_open = state.opened_at is not None
            state.failures, state.opened_at, state.trial_at = 0, None, None
            if was_open:
                self.io.emit("breaker.closed", provider=self.provider)

    def record_failure(self, error: str) -> int | None:
        """Count one failure; if that opens the circuit, the consecutive failure count."""
        with self._state() as state:
            state.failures += 1
            trial_failed = state.trial_at is not None
            state.trial_at = None
            if trial_failed or state.failures >= self.threshold:
                state.opened_at = self.clock()
                self.io.emit("breaker.opened", level="warning", provider=self.provider,
                             failures=state.failures, cooldown_s=self.cooldown, error=error)
                return state.failures
            return None


# --- client -------------------------------------------------------------------------


class ProviderClient:
    """HTTP (and WebSocket) client for one provider, with retries, breaker and events.

    `retries` counts extra attempts after the first. `request` returns a 2xx
    `httpx.Response` whose body is already read, or raises `mb.ActionError`
    (`ProviderHTTPError` for an error status, `CircuitOpenError` when open).
    """

    def __init__(self, io: ActionIO, provider: str, base_url: str, timeout: float = 60.0,
                 retries: int = 3, breaker_threshold: int = 5, breaker_cooldown: float = 30.0,
                 *, headers: Mapping[str, str] | None = None, backoff: float = 0.5,
                 backoff_max: float = 10.0, clock: Callable[[], float] = time.time) -> None:
        parsed = urllib.parse.urlsplit(base_url or "")
        shown = _shown_url(base_url or "")
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ActionError(
                f"provider {provider!r} needs an http:// or https:// url, got {shown!r}; set "
                f"[providers.{provider}] url in MB.toml", retryable=False)
        problem = _authority_problem(parsed)
        if problem:
            raise ActionError(f"provider {provider!r} url {shown!r} {problem}; set "
                              f"[providers.{provider}] url in MB.toml", retryable=False)
        self.io, self.provider = io, provider
        self.timeout, self.retries = timeout, max(0, retries)
        self.backoff, self.backoff_max = backoff, backoff_max
        self._headers = dict(headers or {})
        userinfo, _, hostport = parsed.netloc.rpartition("@")
        basic = _basic_auth(userinfo) if "@" in parsed.netloc else None
        if basic and not any(name.lower() == "authorization" for name in self._headers):
            self._headers["Authorization"] = basic
        self._secrets = _secret_values(
            self._headers, userinfo_secrets(userinfo) if basic else [])
        # The host alone names the server in messages: a URL may carry user:password.
        port = f":{parsed.port}" if parsed.port else ""
        self.server = f"{parsed.scheme}://{parsed.hostname}{port}"
        # Without its user:password, sent as the Authorization header above instead.
        self.base_url = urllib.parse.urlunsplit(parsed._replace(netloc=hostport)).rstrip("/")
        self.breaker = CircuitBreaker(io, provider, self.server + parsed.path, breaker_threshold,
                                      breaker_cooldown, trial_timeout=timeout * 2, clock=clock)
        self._http = httpx.Client(base_url=self.base_url, timeout=httpx.Timeout(timeout),
                                  headers=self._headers)

    def __enter__(self) -> ProviderClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, *, json: Any = None,
                params: Mapping[str, Any] | None = None, content: bytes | None = None,
                headers: Mapping[str, str] | None = None) -> httpx.Response:
        """Send one request, retrying transient failures; see the class docstring."""
        method = method.upper()
        secrets = self._secrets + _secret_values(headers or {})
        request = self._http.build_request(method, path, json=json, params=params,
                                           content=content, headers=headers)
        shown = request.url.path  # never the query: it may carry a key

        def send() -> tuple[httpx.Response, int, int]:
            try:
                response = self._http.send(request)
            except (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL) as exc:
                raise ActionError(f"provider {self.provider!r}: {method} {shown}: "
                                  f"{redact(str(exc), secrets)}", retryable=False) from None
            response.read()
            return response, response.status_code, len(response.content)

        def attempt(number: int) -> httpx.Response:
            response = self._exchange(method, shown, number, len(request.content), secrets, send)
            return self._check(response, method, shown, secrets)

        return self._with_retries(method, shown, attempt)

    def websocket(self, path: str, params: Mapping[str, str] | None = None) -> ClientConnection:
        """Open a WebSocket (`ws://` for `http://`) with the same retries, breaker and events.

        The caller closes it (`with client.websocket(...) as ws:`).
        """
        from websockets.exceptions import InvalidStatus, InvalidURI
        from websockets.sync.client import connect

        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        url = re.sub(r"^http", "ws", self.base_url) + path + query

        def send() -> tuple[Any, int, int]:
            try:
                # Entered at once: websockets >= 17.1 warns about a bare connect().
                return connect(url, open_timeout=self.timeout, additional_headers=self._headers,
                               max_size=64 * 2**20).__enter__(), 101, 0
            except InvalidStatus as exc:  # answered, but not with 101 Switching Protocols
                return exc.response, exc.response.status_code, len(exc.response.body or b"")
            except InvalidURI as exc:  # str(exc) is the whole URL: name the server only
                raise ActionError(
                    f"provider {self.provider!r}: cannot open a websocket to {self.server}: "
                    f"{exc.msg} (check [providers.{self.provider}] url)", retryable=False) from None

        def attempt(number: int) -> ClientConnection:
            conn = self._exchange("GET", path, number, 0, self._secrets, send, websocket=True)
            status = getattr(conn, "status_code", 101)
            if status >= 500:
                raise _Transient(f"status {status}")
            if status != 101:
                raise ProviderHTTPError(
                    f"provider {self.provider!r}: websocket GET {path} answered {status}",
                    provider=self.provider, method="GET", path=path, status=status,
                    body=redact((conn.body or b"").decode(errors="replace"), self._secrets))
            self.breaker.record_success()
            return conn  # type: ignore[no-any-return]

        return self._with_retries("GET", path, attempt)

    # --- internals ------------------------------------------------------------------

    def _with_retries(self, method: str, path: str, attempt: Callable[[int], T]) -> T:
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.retries + 1), wait=self._wait,
            retry=tenacity.retry_if_exception_type(_Transient), reraise=True)
        number = 0
        try:
            for state in retrying:
                with state:
                    number = state.retry_state.attempt_number
                    self.breaker.before_request()
                    try:
                        return attempt(number)
                    except _Transient as exc:
                        opened = self.breaker.record_failure(str(exc)) if exc.breaker else None
                        if opened is not None:
                            raise CircuitOpenError(
                                f"provider {self.provider!r} is unavailable: circuit open after "
                                f"{opened} consecutive failures (last: {method} {path} to "
                                f"{self.server}: {exc}); retrying after "
                                f"{math.ceil(self.breaker.cooldown)} s", retryable=True) from None
                        raise
        except _Transient as exc:
            attempts = f"{number} attempts" if number > 1 else "1 attempt"
            raise ActionError(f"provider {self.provider!r}: {method} {path} to {self.server} "
                              f"failed after {attempts}: {exc}", retryable=True) from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            return min(exc.retry_after, self.backoff_max)
        exponential = self.backoff * 2 ** (state.attempt_number - 1)
        return min(self.backoff_max, exponential) + random.uniform(0, self.backoff)

    def _check(self, response: httpx.Response, method: str, path: str,
               secrets: list[str]) -> httpx.Response:
        status = response.status_code
        if status < 400:
            self.breaker.record_success()
            return response
        message = _server_message(response, secrets)
        reason = redact(response.reason_phrase, secrets)
        if status >= 500 or status in _RETRY_STATUSES:
            raise _Transient(f"status {status} {reason}: {message}".rstrip(": "),
                             retry_after=_retry_after(response), breaker=status >= 500)
        self.breaker.record_success()  # it answered: the server is up, the request is wrong
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        raise ProviderHTTPError(
            f"provider {self.provider!r}: {method} {path} answered {status} "
            f"{reason}: {message}".rstrip(": "),
            provider=self.provider, method=method, path=path, status=status,
            body=redact_value(body, secrets))

    def _exchange(self, method: str, path: str, attempt: int, sent: int, secrets: list[str],
                  send: Callable[[], tuple[T, int, int]], **extra: Any) -> T:
        """One attempt of `send`, between its request and response events.

        A connection error or timeout becomes `_Transient`; `send` returns
        (result, status, bytes received) or raises a final `ActionError`.
        """
        self._emit("provider.request", secrets, method=method, path=path, attempt=attempt,
                   bytes_sent=sent, **extra)
        start = time.monotonic()
        status, received, error = None, 0, None
        try:
            result, status, received = send()
            return result
        except (httpx.TransportError, OSError, TimeoutError, InvalidHandshake) as exc:
            error = redact(_describe_transport(exc), secrets)
            raise _Transient(error) from None
        finally:
            if error is not None:
                extra["error"] = error
            self._emit("provider.response", secrets, method=method, path=path, status=status,
                       attempt=attempt, duration_s=round(time.monotonic() - start, 6),
                       bytes_sent=sent, bytes_received=received, **extra)

    def _emit(self, type: str, secrets: list[str], **data: Any) -> None:
        for key, value in data.items():
            if isinstance(value, str):
                data[key] = redact(value, secrets)
        self.io.emit(type, provider=self.provider, **data)


def _secret_values(headers: Mapping[str, str], extra: Iterable[str] = ()) -> list[str]:
    """What to mask for the values of secret-looking `headers` and for the `extra`
    secrets (`mb.masking.masked_forms`)."""
    raw = [value for name, value in headers.items() if _SECRET_HEADER.search(name) and value]
    return masked_forms([*raw, *extra])


def _shown_url(url: str) -> str:
    """`url` as a message may show it: `redact_url`, and then anything up to a later `@`.

    `redact_url` looks for `user:password@` before the first `/`; a password
    holding a `/` would slip past it, so any `@` left after the scheme is
    taken to end a user:password too.
    """
    shown = redact_url(url)
    scheme, sep, rest = shown.partition("://")
    if not sep:
        scheme, rest = "", shown
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return f"{scheme}{sep}{rest}"


def _authority_problem(parsed: urllib.parse.SplitResult) -> str | None:
    """Why the host part of a URL cannot be used, if it cannot: said without quoting it.

    A port that is not a number is most often a password with `#`, `?` or `/`
    cut short by the parser, so `urllib`'s own error, which quotes it, must not
    be shown. An `@` after the host means the same and would send the request to
    a host made of part of the user name.
    """
    try:
        parsed.port
    except ValueError:
        return ("has a port that is not a number from 0 to 65535 (a '#', '?' or '/' in a "
                "password must be written %23, %3F, %2F)")
    if "@" in parsed.path + parsed.query + parsed.fragment:
        return ("has an '@' after its host (a '#', '?' or '/' in a user name or password must "
                "be written %23, %3F, %2F)")
    return None


def _basic_auth(userinfo: str) -> str:
    """The `Authorization` value for a URL's `user:password`, as httpx would derive it.

    mb sends it itself rather than leaving the credentials in the URL: httpx's
    URL-derived Basic auth replaces an explicit `Authorization` header (the
    rule's API key would silently not be sent), and websockets refuses a user
    name without a password.
    """
    return "Basic " + basic_credentials(userinfo)


def _server_message(response: httpx.Response, secrets: list[str]) -> str:
    """The server's own error sentence (OpenAI/FastAPI/ComfyUI JSON shapes, else the text),
    on one line, masked and then cut to `_MAX_MESSAGE` characters.

    Masked before the cut: a secret straddling the cut would otherwise leave
    its start, which no longer matches, in the message.
    """
    try:
        body = response.json()
    except ValueError:
        text = response.text
    else:
        text = json.dumps(body)
        for key in ("error", "detail", "message") if isinstance(body, dict) else ():
            value = body.get(key)
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                text = value["message"]
                break
            if isinstance(value, str):
                text = value
                break
    return " ".join(redact(text, secrets).split())[:_MAX_MESSAGE]


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None


def _describe_transport(exc: BaseException) -> str:
    if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
        return f"timed out ({type(exc).__name__})"
    text = str(exc) or type(exc).__name__
    if isinstance(exc, (httpx.ConnectError, ConnectionRefusedError)):
        return f"cannot connect: {text}"
    return f"{type(exc).__name__}: {text}"
