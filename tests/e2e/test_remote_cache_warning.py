"""A remote cache is not available in this version: asked for in any of the three ways
(SPEC §3, §8), the build goes on with the local cache and says so every time."""

from __future__ import annotations

import pytest

WARNING = ("warning: remote caches are not available in this version; the local cache is "
           "used (remote http://cache.example:9000 ignored)")


@pytest.mark.parametrize("how", ["flag", "mb_toml", "environment"])
def test_every_way_of_asking_for_a_remote_cache_warns_and_builds(mb_workspace, how):
    files = {"p/BUILD.toml": '[t]\nrule = "genrule"\nouts = ["t.txt"]\ncmd = "echo t > $@"\n'}
    if how == "mb_toml":
        files["MB.toml"] = '[cache]\nremote = "http://cache.example:9000"\n'
    ws = mb_workspace(files)
    ws.env["MB_RACY_SECONDS"] = "0"
    args = ["--remote-cache", "http://cache.example:9000"] if how == "flag" else []
    env = {"MB_REMOTE_CACHE": "http://cache.example:9000"} if how == "environment" else {}
    for _ in range(3):  # the later ones would be no-ops: they must say it too
        result = ws.run("build", *args, env=env)
        assert result.exit_code == 0, result.stderr
        assert result.stderr.strip() == WARNING
    assert ws.out("p/t.txt").read_text() == "t\n"


def test_mb_watch_says_it_too(mb_workspace):
    from test_watch import watching

    ws = mb_workspace({"p/BUILD.toml": '[t]\nrule = "genrule"\nouts = ["t.txt"]\n'
                                       'cmd = "echo t > $@"\n'})
    ws.env["MB_REMOTE_CACHE"] = "http://cache.example:9000"
    with watching(ws, "//p:t") as watch:
        watch.wait_builds(1)
        watch.wait_reports(1)
        assert watch.stop() == 130
    assert WARNING in watch.stderr
