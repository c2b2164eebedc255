"""`ProviderClient` never lets a secret reach a message, an event or `ProviderHTTPError.body`:
credentials in the provider URL, secrets cut at the message limit, encoded secrets.

Real HTTP against the scripted local server of test_providers.py (its `$AUTH`
in a scripted body is the Authorization header the server received).
"""

from __future__ import annotations

import base64
import json
import urllib.parse

import pytest
from test_providers import SECRET, client, closed_port, rec, server  # noqa: F401

import mb
from mb.providers import ProviderClient, ProviderHTTPError

PASSWORD = "PWSEKRIT-9999-lion"
TOKEN = "PWSEKRIT-token-7777"


def _basic(pair: str) -> str:
    return "Basic " + base64.b64encode(pair.encode()).decode()


def _auth(headers: dict[str, str]) -> str:
    """The Authorization header the server received, whatever its spelling."""
    [value] = [v for k, v in headers.items() if k.lower() == "authorization"]
    return value


def _with_userinfo(url: str, userinfo: str) -> str:
    return url.replace("http://", f"http://{userinfo}@", 1)


@pytest.mark.parametrize("url", [
    f"comfyuser:{PASSWORD}@127.0.0.1:8188",  # scheme forgotten
    f"ftp://comfyuser:{PASSWORD}@127.0.0.1:8188",
])
def test_a_url_without_http_scheme_is_shown_without_its_credentials(rec, url):
    with pytest.raises(mb.ActionError) as caught:
        ProviderClient(rec.io, "comfy", url)
    shown = url.replace(f"comfyuser:{PASSWORD}", "***")
    assert str(caught.value) == (f"provider 'comfy' needs an http:// or https:// url, got "
                                 f"{shown!r}; set [providers.comfy] url in MB.toml")
    assert caught.value.retryable is False


def test_a_port_that_does_not_parse_is_an_action_error_naming_the_redacted_url(rec):
    # The '#' ends the authority for the parser: the port would be 'PWSEKRIT'.
    with pytest.raises(mb.ActionError) as caught:
        ProviderClient(rec.io, "comfy", "http://comfyuser:PWSEKRIT#9999-lion@127.0.0.1:8188")
    assert str(caught.value) == (
        "provider 'comfy' url 'http://***@127.0.0.1:8188' has a port that is not a number from "
        "0 to 65535 (a '#', '?' or '/' in a password must be written %23, %3F, %2F); set "
        "[providers.comfy] url in MB.toml")
    assert caught.value.retryable is False


@pytest.mark.parametrize("url", [
    "http://comfyuser:PW/SEKRIT-9999@127.0.0.1:8188",  # '/' hides the '@' from redact_url
    "http://comfyuser:1234/PWSEKRIT@127.0.0.1:8188",  # would connect to host 'comfyuser'
    "http://PW#SEKRIT-token@127.0.0.1:8188",
])
def test_a_credential_holding_a_url_delimiter_is_refused_without_showing_it(rec, url):
    with pytest.raises(mb.ActionError) as caught:
        ProviderClient(rec.io, "comfy", url)
    message = str(caught.value)
    assert message.startswith("provider 'comfy' url 'http://***@127.0.0.1:8188' has ")
    assert "SEKRIT" not in message and "\n" not in message
    assert caught.value.retryable is False


def test_url_credentials_go_as_basic_auth_and_every_echo_of_them_is_masked(server, rec):
    pair = f"comfyuser:{PASSWORD}"
    server.script = [
        (400, {"error": {"message": "rejected: Authorization: $AUTH"}, "node_errors": {}}),
        (400, {"error": f"user comfyuser, password {PASSWORD}"}),
        (500, f"down; auth was $AUTH ({pair})".encode()),
    ]
    with client(rec, _with_userinfo(server.url, pair), provider="comfy", retries=0,
                breaker_threshold=1) as c:
        assert pair not in c.base_url and c.server == server.url
        with pytest.raises(ProviderHTTPError) as first:
            c.request("POST", "/prompt", json={"prompt": {}})
        with pytest.raises(ProviderHTTPError) as second:
            c.request("POST", "/prompt")
        with pytest.raises(mb.ActionError) as third:
            c.request("GET", "/history")
    assert _auth(server.requests[0][2]) == _basic(pair)
    assert str(first.value).endswith("answered 400 Bad Request: rejected: Authorization: ***")
    # Plugins quote the body (comfy_generate's rejection line): it is masked too.
    assert first.value.body == {"error": {"message": "rejected: Authorization: ***"},
                                "node_errors": {}}
    assert str(second.value).endswith(": user comfyuser, password ***")
    assert "down; auth was *** (comfyuser:***)); retrying" in str(third.value)
    texts = [str(first.value), str(second.value), str(third.value),
             json.dumps(first.value.body), json.dumps(second.value.body), rec.text]
    basic_token = _basic(pair).split()[1]
    assert not any(PASSWORD in t or basic_token in t for t in texts)
    assert rec.events("breaker.opened")[0]["data"]["error"].endswith("(comfyuser:***)")


def test_a_token_given_as_the_url_user_name_is_masked(server, rec):
    server.script = [(401, {"detail": f"bad token {TOKEN} ($AUTH)"})]
    with client(rec, _with_userinfo(server.url, TOKEN)) as c, \
            pytest.raises(ProviderHTTPError) as caught:
        c.request("GET", "/x")
    assert _auth(server.requests[0][2]) == _basic(TOKEN + ":")
    assert str(caught.value).endswith("answered 401 Unauthorized: bad token *** (***)")
    assert TOKEN not in rec.text


def test_an_explicit_authorization_header_wins_over_url_credentials(server, rec):
    """httpx would let the URL's Basic auth replace the rule's API key: it must not."""
    server.script = [(200, {}), (200, {}), (401, {"error": f"no: {PASSWORD} $AUTH"})]
    url = _with_userinfo(server.url, f"comfyuser:{PASSWORD}")
    with client(rec, url, headers={"Authorization": f"Bearer {SECRET}"}) as c:
        c.request("GET", "/a")
        c.request("GET", "/b", headers={"authorization": "Bearer other-key-123"})
        with pytest.raises(ProviderHTTPError) as caught:
            c.request("GET", "/c")
    assert [_auth(r[2]) for r in server.requests] == [
        f"Bearer {SECRET}", "Bearer other-key-123", f"Bearer {SECRET}"]
    assert str(caught.value).endswith("answered 401 Unauthorized: no: *** ***")
    with client(rec, url) as c:
        c.request("GET", "/d", headers={"Authorization": f"Bearer {SECRET}"})
    assert _auth(server.requests[-1][2]) == f"Bearer {SECRET}"


def test_websocket_with_url_credentials_sends_basic_auth_and_masks_the_echo(server, rec):
    server.script = [(403, b"forbidden for $AUTH")]
    with client(rec, _with_userinfo(server.url, TOKEN), provider="comfy") as c, \
            pytest.raises(ProviderHTTPError) as caught:
        c.websocket("/ws", {"clientId": "abc"})
    assert _auth(server.requests[0][2]) == _basic(TOKEN + ":")
    assert str(caught.value) == "provider 'comfy': websocket GET /ws answered 403"
    assert caught.value.body == "forbidden for ***"


def test_an_invalid_websocket_url_is_a_non_retryable_error_naming_only_the_server(
        rec, closed_port):
    url = f"http://comfyuser:{PASSWORD}@127.0.0.1:{closed_port}/#frag"
    with client(rec, url, provider="comfy") as c, pytest.raises(mb.ActionError) as caught:
        c.websocket("/ws", {"clientId": "abc"})
    assert str(caught.value) == (
        f"provider 'comfy': cannot open a websocket to http://127.0.0.1:{closed_port}: "
        "fragment identifier is meaningless (check [providers.comfy] url)")
    assert caught.value.retryable is False
    assert PASSWORD not in rec.text and "#frag" not in rec.text


@pytest.mark.parametrize("status", [400, 503])
def test_a_secret_across_the_message_limit_is_masked_before_the_cut(server, rec, status):
    # The key straddles character 300 of the server's message.
    server.script = [(status, {"error": "z" * 285 + " $AUTH"}),
                     (status, b"y" * 290 + b" $AUTH")]
    messages = []
    with client(rec, server.url, retries=0, headers={"Authorization": f"Bearer {SECRET}"}) as c:
        for _ in range(2):
            with pytest.raises(mb.ActionError) as caught:
                c.request("POST", "/v1/audio/speech")
            messages.append(str(caught.value))
    assert messages[0].endswith("z" * 285 + " ***") and messages[1].endswith("y" * 290 + " ***")
    assert not any(SECRET[:6] in m or "Bearer" in m for m in messages)


def test_url_encoded_and_json_escaped_forms_of_a_secret_are_masked(server, rec):
    key = 'SEKRIT+4242/zebra== x"y\\z'  # base64-like, a space, a quote, a backslash
    quoted, plus = urllib.parse.quote(key, safe=""), urllib.parse.quote_plus(key)
    escaped = json.dumps(key)[1:-1]
    assert len({key, quoted, plus, escaped}) == 4
    first_part = key.split()[0]
    server.script = [
        (404, {"error": f"no route /e404url?key={urllib.parse.quote(first_part, safe='')}"}),
        (400, f"bad: {quoted} | {plus} | {escaped}".encode()),
        (400, [key]),  # no known shape: the JSON text itself, key escaped
    ]
    messages = []
    with client(rec, server.url, headers={"X-Api-Key": key}) as c:
        for params in ({"key": first_part}, None, None):
            with pytest.raises(ProviderHTTPError) as caught:
                c.request("GET", "/e404url", params=params)
            messages.append(str(caught.value))
    # httpx writes the query string exactly as the server echoed it.
    assert server.requests[0][1] == f"/e404url?key={urllib.parse.quote(first_part, safe='')}"
    assert messages[0].endswith("answered 404 Not Found: no route /e404url?key=***")
    assert messages[1].endswith("answered 400 Bad Request: bad: *** | *** | ***")
    assert messages[2].endswith('answered 400 Bad Request: ["***"]')
    assert not any("SEKRIT" in m for m in messages)
