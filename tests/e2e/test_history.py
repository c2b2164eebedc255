"""End-to-end: events, manifests, log/show/diff/checkout/status/explain/tail and --profile."""

from __future__ import annotations

import json
import re
import shutil
import signal

PROJECT = {
    "p/in.txt": "one\n",
    "p/BUILD.toml": """
[up]
rule = "genrule"
srcs = ["in.txt"]
outs = ["up.txt"]
cmd = "tr a-z A-Z < $< > $@"

[wrap]
rule = "genrule"
srcs = [":up"]
outs = ["wrap.txt"]
cmd = "sed 's/^/[/' $< > $@"
env = { MODE = "a" }
""",
}

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def current(ws) -> str:
    return (ws.path / ".mb/builds/current").read_text().strip()


def test_events_and_manifest_follow_the_spec(mb_workspace):
    ws = mb_workspace(PROJECT)
    assert ws.run("build").exit_code == 0
    events = ws.events()
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert all(TS.match(e["ts"]) for e in events)
    types = [e["type"] for e in events]
    assert types[0] == "build.started" and types[-1] == "build.finished"
    finished = [e for e in events if e["type"] == "action.finished"]
    assert {e["target"] for e in finished} == {"//p:up", "//p:wrap"}
    up = [e for e in finished if e["target"] == "//p:up"][0]
    assert up["data"]["cached"] is False and up["data"]["provisional"] is False
    digest = up["data"]["outputs"]["mb-out/p/up.txt"]  # as in SPEC §9
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    build_id = current(ws)
    assert re.fullmatch(r"b-\d{8}-\d{6}-[0-9a-f]{4}", build_id)
    manifest = json.loads((ws.path / f".mb/builds/{build_id}.json").read_text())
    assert manifest["status"] == "ok" and manifest["build_id"] == build_id
    record = manifest["targets"]["//p:up"]
    assert record["status"] == "built" and record["cached"] is False
    assert record["outputs"] == {"mb-out/p/up.txt": digest}


def test_log_show_diff_and_checkout(mb_workspace):
    ws = mb_workspace(PROJECT)
    assert ws.run("build").exit_code == 0
    first = current(ws)
    (ws.path / "p/in.txt").write_text("two\n")
    assert ws.run("build").exit_code == 0
    second = current(ws)
    log = ws.run("log").stdout.splitlines()
    assert [line.split()[0] for line in log] == [first, second]
    assert "executed=2" in log[1]
    show = ws.run("show").stdout
    assert re.search(r"//p:up\s+built\s+\d+\.\d\ds\s+mb-out/p/up.txt", show)
    diff = ws.run("diff").stdout.splitlines()
    assert diff[0] == f"{first} -> {second}"
    assert [line.split()[:2] for line in diff[1:]] == [
        ["changed", "mb-out/p/up.txt"], ["changed", "mb-out/p/wrap.txt"]]
    assert ws.run("checkout", first).exit_code == 0
    assert ws.out("p/wrap.txt").read_text() == "[ONE\n"
    assert ws.run("checkout", second).exit_code == 0
    assert ws.out("p/wrap.txt").read_text() == "[TWO\n"
    # A collected blob is a clear error, not a traceback.
    shutil.rmtree(ws.path / ".mb/cache/cas")
    result = ws.run("checkout", first)
    assert result.exit_code == 1
    assert "the cache no longer holds 2 of its outputs" in result.stderr
    assert "Traceback" not in result.stderr
    assert ws.run("show", "b-nope").exit_code == 2


def test_status_reports_failures(mb_workspace):
    ws = mb_workspace({**PROJECT, "q/BUILD.toml": '[bad]\nrule = "genrule"\nouts = ["b"]\ncmd = "exit 4"\n'})
    assert ws.run("build", "-k").exit_code == 1
    status = ws.run("status").stdout
    assert "failed: //q:bad" in status
    assert "provisional: none" in status
    assert re.search(r"cache: \d+ bytes", status)


def test_explain_names_what_changed(mb_workspace):
    ws = mb_workspace(PROJECT)
    assert ws.run("build").exit_code == 0
    (ws.path / "p/in.txt").write_text("changed\n")
    assert ws.run("build").exit_code == 0
    text = ws.run("explain", "//p:up").stdout
    assert "//p:up: genrule -> up.txt: executed" in text
    assert re.search(r"input p/in.txt changed: [0-9a-f]{12} -> [0-9a-f]{12}", text)
    build = (ws.path / "p/BUILD.toml").read_text().replace('MODE = "a"', 'MODE = "b"')
    (ws.path / "p/BUILD.toml").write_text(build)
    assert ws.run("build").exit_code == 0
    text = ws.run("explain", "//p:wrap").stdout
    assert "environment MODE changed: 'a' -> 'b'" in text
    assert "//p:up: genrule -> up.txt: cached" in ws.run("explain", "//p:up").stdout


def test_resume_after_failure_redoes_only_what_did_not_finish(mb_workspace):
    files = {"r/BUILD.toml": "".join(
        f'[ok{i}]\nrule = "genrule"\nouts = ["ok{i}"]\ncmd = "echo {i} > $@"\n' for i in range(4))
        + '[bad]\nrule = "genrule"\nouts = ["bad"]\ncmd = "test -e /nonexistent-mb-flag && echo > $@"\n'}
    ws = mb_workspace(files)
    assert ws.run("build", "-k").exit_code == 1
    assert sorted(ws.executed()) == [f"//r:ok{i}" for i in range(4)]
    build = (ws.path / "r/BUILD.toml").read_text().replace("test -e /nonexistent-mb-flag && ", "")
    (ws.path / "r/BUILD.toml").write_text(build)
    assert ws.run("build").exit_code == 0
    assert ws.executed() == ["//r:bad"]


def test_tail_filters_and_follows(mb_workspace):
    ws = mb_workspace(PROJECT)
    assert ws.run("build").exit_code == 0
    lines = ws.run("tail", "--type", "action.finished", "--target", "//p:up").stdout.splitlines()
    assert len(lines) == 1 and "action.finished" in lines[0] and "//p:up" in lines[0]
    raw = ws.run("tail", "--json", "--type", "build").stdout.splitlines()
    assert [json.loads(line)["type"] for line in raw] == ["build.started", "build.finished"]
    follower = ws.popen("tail", "-f", "--json", "--type", "build.finished")
    first = json.loads(follower.stdout.readline())  # the existing one
    (ws.path / "p/in.txt").write_text("again\n")
    assert ws.run("build").exit_code == 0
    second = json.loads(follower.stdout.readline())  # arrives while following
    assert second["seq"] > first["seq"] and second["type"] == "build.finished"
    follower.send_signal(signal.SIGINT)
    _out, err = follower.communicate(timeout=30)
    assert follower.returncode == 130 and "Traceback" not in err


def test_profile_is_a_chrome_trace(mb_workspace, tmp_path):
    ws = mb_workspace(PROJECT)
    trace_path = tmp_path / "trace.json"
    assert ws.run("build", "--profile", str(trace_path)).exit_code == 0
    trace = json.loads(trace_path.read_text())
    spans = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert {e["cat"] for e in spans} == {"analysis", "cache", "action"}
    for event in spans:
        assert isinstance(event["ts"], float | int) and event["dur"] >= 0
        assert isinstance(event["pid"], int) and isinstance(event["tid"], int)
    lanes = {e["args"]["name"] for e in trace["traceEvents"] if e["ph"] == "M"}
    assert "main" in lanes and any(name.startswith("mb-action") for name in lanes)


def test_provider_costs_are_summed_per_target_and_build(mb_workspace):
    import pathlib

    plugin = pathlib.Path(__file__).parent / "plugin_modules" / "costly.py"
    ws = mb_workspace({
        "plug/costly.py": plugin.read_text(),
        "c/BUILD.toml": '[a]\nrule = "costly"\nprice = 0.25\n[b]\nrule = "costly"\nprice = 1.5\n',
    })
    env = {"PYTHONPATH": str(ws.path / "plug")}
    assert ws.run("-p", "costly", "build", env=env).exit_code == 0
    finished = [e for e in ws.last_build_events() if e["type"] == "build.finished"][0]
    assert finished["data"]["cost"] == 1.75
    responses = [e for e in ws.last_build_events() if e["type"] == "provider.response"]
    assert sorted(e["target"] for e in responses) == ["//c:a", "//c:b"]
    manifest = json.loads((ws.path / f".mb/builds/{current(ws)}.json").read_text())
    assert manifest["targets"]["//c:a"]["cost"] == 0.25
    assert manifest["targets"]["//c:b"]["cost"] == 1.5
    assert "provider costs: 1.7500" in ws.run("status").stdout
    assert ws.run("-p", "costly", "build", env=env).exit_code == 0
    finished = [e for e in ws.last_build_events() if e["type"] == "build.finished"][0]
    assert finished["data"]["cost"] is None, "cached actions spent nothing"


def test_a_command_cannot_report_costs_or_events_through_the_channel(mb_workspace):
    # The channel is how Python actions (mb.sandbox.worker) report; a command
    # writing a file of that name in its sandbox is not listened to.
    ws = mb_workspace({"c/BUILD.toml": """
[sneaky]
rule = "genrule"
outs = ["o.txt"]
cmd = "echo '{\\"kind\\": \\"cost\\", \\"amount\\": 99}' > .mb-channel.jsonl && echo '{\\"kind\\": \\"event\\", \\"type\\": \\"provider.request\\"}' >> .mb-channel.jsonl && touch $@"
"""})
    assert ws.run("build").exit_code == 0
    events = ws.last_build_events()
    finished = [e for e in events if e["type"] == "build.finished"][0]
    assert finished["data"]["cost"] is None
    assert not [e for e in events if e["type"] == "provider.request"]
    manifest = json.loads((ws.path / f".mb/builds/{current(ws)}.json").read_text())
    assert manifest["targets"]["//c:sneaky"]["cost"] is None


def test_explain_of_unknown_labels_and_targets_without_actions(mb_workspace):
    ws = mb_workspace({"a/x": "", "a/BUILD.toml": '[fg]\nrule = "filegroup"\nsrcs = ["x"]\n\n'
                                                  '[t]\nrule = "genrule"\nouts = ["o"]\n'
                                                  'cmd = "exit 3"\n'})
    unknown = ws.run("explain", "//a:nope")
    assert unknown.exit_code == 2
    assert unknown.stderr.strip() == "no target 'nope' in package 'a' (//a:nope)"
    no_package = ws.run("explain", "//zz:x")
    assert no_package.exit_code == 2
    files_only = ws.run("explain", "//a:fg")
    assert files_only.exit_code == 0
    assert "declares no actions" in files_only.stdout
    not_built = ws.run("explain", "//a:t")
    assert not_built.exit_code == 2
    assert not_built.stderr == ("//a:t has not been built yet: no recorded build ran its "
                                "actions; run `mb build //a:t` first\n")
    assert ws.run("build").exit_code == 1
    failed = ws.run("explain", "//a:t")
    assert failed.exit_code == 0
    assert "failed" in failed.stdout and "command exited with status 3" in failed.stdout


def test_checkout_leaves_only_the_outputs_and_keeps_exec_bits(mb_workspace):
    ws = mb_workspace({"p/script.txt": "hello\n",
                       "p/BUILD.toml": '[up]\nrule = "genrule"\nsrcs = ["script.txt"]\n'
                                       'outs = ["up.txt"]\ncmd = "tr a-z A-Z < $< > $@"\n\n'
                                       '[tool]\nrule = "genrule"\nouts = ["tool.sh"]\n'
                                       'cmd = "printf \'#!/bin/sh\\\\necho hi\\\\n\' > $@; '
                                       'chmod +x $@"\n'})
    assert ws.run("build").exit_code == 0
    build_id = (ws.path / ".mb/builds/current").read_text().strip()
    for _ in range(2):
        result = ws.run("checkout", build_id)
        assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in (ws.path / "mb-out/p").iterdir()) == ["tool.sh", "up.txt"]
    import os
    import shutil

    shutil.rmtree(ws.path / "mb-out")
    packs = set((ws.path / ".mb/cache/ac").glob("*.pack"))
    assert ws.run("checkout", build_id).exit_code == 0
    assert os.access(ws.path / "mb-out/p/tool.sh", os.X_OK)
    assert not os.access(ws.path / "mb-out/p/up.txt", os.X_OK)
    # The results it used are recorded as used now, for `mb gc`'s least-recently-used order.
    (recorded,) = set((ws.path / ".mb/cache/ac").glob("*.pack")) - packs
    assert recorded.read_text().count('"key"') == 2  # both actions', read for their modes


def test_explain_names_an_exec_bit_change(mb_workspace):
    ws = mb_workspace({"p/tool.sh": "#!/bin/sh\necho hi\n",
                       "p/BUILD.toml": '[t]\nrule = "genrule"\nsrcs = ["tool.sh"]\n'
                                       'outs = ["o"]\ncmd = "test -x $< && echo x > $@ || '
                                       'echo - > $@"\n'})
    assert ws.run("build").exit_code == 0
    (ws.path / "p/tool.sh").chmod(0o755)
    assert ws.run("build").exit_code == 0
    assert ws.out("p/o").read_text() == "x\n"
    explained = ws.run("explain", "//p:t")
    assert "input p/tool.sh became executable" in explained.stdout, explained.stdout
