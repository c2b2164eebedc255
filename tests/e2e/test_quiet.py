"""`-q` leaves out progress, not the result: every requested target's outputs are
listed at the end (SPEC §8), by a full build and by a no-op alike."""

from __future__ import annotations


def test_quiet_builds_still_list_the_outputs(mb_workspace):
    ws = mb_workspace({"p/BUILD.toml": '[t]\nrule = "genrule"\nouts = ["t.txt"]\n'
                                       'cmd = "echo t > $@"\n'})
    ws.env["MB_RACY_SECONDS"] = "0"
    for _ in range(3):  # executed, then cached (the last one a no-op from stats)
        result = ws.run("-q", "build")
        assert result.exit_code == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0].startswith("build ok: ")
        assert lines[1:] == [line for line in lines[1:] if not line.startswith("[")], \
            "no progress lines"
        assert "  mb-out/p/t.txt" in lines, result.stdout
    started = [e for e in ws.events() if e["type"] == "build.started"]
    assert started[-1]["data"].get("noop"), "the last one was answered by the fast path"
