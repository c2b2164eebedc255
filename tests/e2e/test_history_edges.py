"""End-to-end: history commands at their edges: nothing recorded yet, empty or unknown
build ids, and `mb explain` of output-file labels and of actions that never ran.

Exit codes as docs/history.md tabulates them: nothing was built, so nothing
failed; "no build yet" and "no such build" are usage errors (2), one line each.
"""

from __future__ import annotations

import pytest

ONE_TARGET = {"BUILD.toml": '[x]\nrule = "genrule"\nouts = ["x.txt"]\ncmd = "echo x > $@"\n'}

NOT_RUN = {
    "m/BUILD.toml": '[needs]\nrule = "genrule"\nsrcs = ["nowhere.txt"]\nouts = ["n.txt"]\n'
                    'cmd = "cp $< $@"\n',
    "f/BUILD.toml": '[bad]\nrule = "genrule"\nouts = ["b.txt"]\ncmd = "exit 3"\n\n'
                    '[dep]\nrule = "genrule"\nsrcs = [":bad"]\nouts = ["d.txt"]\n'
                    'cmd = "cp $< $@"\n\n'
                    '[fg]\nrule = "filegroup"\nsrcs = ["gone.txt"]\n\n'
                    '[miss]\nrule = "genrule"\nsrcs = ["gone.txt", ":bad"]\nouts = ["m.txt"]\n'
                    'cmd = "cat $(SRCS) > $@"\n',
}


def current(ws) -> str:
    return (ws.path / ".mb/builds/current").read_text().strip()


def assert_one_line_usage_error(result, text: str) -> None:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert text in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("args", "text"), [
    (("show",), "no build recorded yet in this workspace; run `mb build` first"),
    (("diff",), "mb diff needs two recorded builds and this workspace has 0"),
    (("explain", "//:x"), "//:x has not been built yet"),
    (("checkout", "b-20260101-000000-abcd"), "no build recorded yet"),
    (("tail", "--build", "b-20260101-000000-abcd"), "no build recorded yet"),
])
def test_nothing_recorded_yet_is_a_usage_error(mb_workspace, args, text):
    ws = mb_workspace(ONE_TARGET)
    assert_one_line_usage_error(ws.run(*args), text)


def test_log_and_status_with_nothing_recorded_answer_with_exit_0(mb_workspace):
    ws = mb_workspace(ONE_TARGET)
    log = ws.run("log")
    assert (log.exit_code, log.stdout) == (0, "")
    status = ws.run("status")
    assert status.exit_code == 0 and "no build yet" in status.stdout


def test_diff_after_one_build_is_a_usage_error(mb_workspace):
    ws = mb_workspace(ONE_TARGET)
    assert ws.run("build").exit_code == 0
    assert_one_line_usage_error(ws.run("diff"), "needs two recorded builds and this workspace has 1")


@pytest.mark.parametrize("args", [
    ("show", ""), ("checkout", ""), ("diff", "", ""), ("diff", ""), ("tail", "--build", ""),
])
def test_an_empty_build_id_names_no_build(mb_workspace, args):
    """`''` is a given id, not "the latest": refused like any unknown id."""
    ws = mb_workspace(ONE_TARGET)
    assert ws.run("build").exit_code == 0
    result = ws.run(*args)
    assert_one_line_usage_error(result, f"no build ''; recent builds: {current(ws)}")
    assert result.stdout == ""


def test_tail_of_an_unknown_build_is_refused(mb_workspace):
    ws = mb_workspace(ONE_TARGET)
    assert ws.run("build").exit_code == 0
    assert_one_line_usage_error(ws.run("tail", "--build", "b-nope"), "no build 'b-nope'")
    assert_one_line_usage_error(ws.run("tail", "--target", ""), "target name is empty")
    build_id = current(ws)
    # A build is known by its events too: a running one has no manifest yet.
    (ws.path / f".mb/builds/{build_id}.json").unlink()
    shown = ws.run("tail", "--build", build_id, "--type", "build")
    assert shown.exit_code == 0, shown.stderr
    assert [line.split()[3] for line in shown.stdout.splitlines()] == [
        "build.started", "build.finished"]


def test_explain_of_a_declared_output_file_explains_its_target(mb_workspace):
    ws = mb_workspace(ONE_TARGET)
    assert ws.run("build").exit_code == 0
    result = ws.run("explain", "//:x.txt")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == ["//:x: genrule -> x.txt: executed",
                                          "  no earlier build ran this action: first build"]
    source = ws.run("explain", "//:BUILD.toml")
    assert (source.exit_code, source.stdout) == (
        0, "//:BUILD.toml is a source file: nothing runs for it\n")


def test_explain_of_an_output_file_not_built_yet_names_its_target(mb_workspace):
    ws = mb_workspace(ONE_TARGET)
    assert_one_line_usage_error(ws.run("explain", "//:x.txt"), "run `mb build //:x` first")


def test_explain_says_an_action_did_not_run_for_a_missing_input(mb_workspace):
    ws = mb_workspace(NOT_RUN)
    assert ws.run("build", "//m:needs").exit_code == 1
    result = ws.run("explain", "//m:needs")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        f"//m:needs: genrule -> n.txt: did not run in the last build ({current(ws)}): "
        "missing source file m/nowhere.txt (needed by //m:needs)\n")


def test_explain_says_an_action_was_skipped_and_why(mb_workspace):
    ws = mb_workspace(NOT_RUN)
    assert ws.run("build", "-k", "//f:dep").exit_code == 1
    kept_going = ws.run("explain", "//f:dep")
    assert kept_going.exit_code == 0, kept_going.stderr
    assert kept_going.stdout.endswith(": skipped: //f:bad failed\n"), kept_going.stdout
    assert "did not run in the last build" in kept_going.stdout
    assert ws.run("build", "//f:dep").exit_code == 1
    stopped = ws.run("explain", "//f:dep")
    assert "skipped: the build stopped when //f:bad failed" in stopped.stdout, stopped.stdout


def test_explain_of_a_skipped_action_also_names_its_missing_source(mb_workspace):
    """The build stopped at //f:bad before it could run //f:miss; the source it lacks is
    said too, and //f:miss is not one of the failures that stopped the build."""
    ws = mb_workspace(NOT_RUN)
    assert ws.run("build", "//f:miss").exit_code == 1
    result = ws.run("explain", "//f:miss")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.endswith(
        ": skipped: the build stopped when //f:bad failed (`mb build -k` keeps going); "
        "missing source file f/gone.txt\n"), result.stdout


def test_explain_of_a_filegroup_names_its_missing_file(mb_workspace):
    ws = mb_workspace(NOT_RUN)
    assert ws.run("build", "//f:fg").exit_code == 1
    result = ws.run("explain", "//f:fg")
    assert result.exit_code == 0, result.stderr
    assert "nothing runs for it" in result.stdout
    assert f"the last build that included it ({current(ws)}) failed: missing source file " \
           "f/gone.txt" in result.stdout


def test_explain_of_a_provisional_action_says_it_was_not_cached(mb_workspace):
    """It said "its key is unchanged; the cache had no result for it (cleaned, ...)":
    provisional results are never cached, which is the reason."""
    ws = mb_workspace(NOT_RUN)
    for _ in range(2):
        assert ws.run("build", "--placeholders", "//m:needs").exit_code == 0
    result = ws.run("explain", "//m:needs")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        "//m:needs: genrule -> n.txt: executed, provisional\n"
        "  an input was a placeholder, so the result was not cached: it runs again until "
        "every input is real\n")
