"""`mb approve` and `mb reject` (SPEC §8) before any rule makes a review gate: the label is
resolved like `mb build` resolves it, then one line says the target is not a gate, exit 2."""

from __future__ import annotations

WORKSPACE = {
    "a/in.txt": "hello\n",
    "a/BUILD.toml": """
[up]
rule = "genrule"
srcs = ["in.txt"]
outs = ["up.txt"]
cmd = "tr a-z A-Z < $< > $@"
""",
}

NOT_A_GATE = "is not a review gate; no rule of this version makes review gates\n"


def test_a_target_is_not_a_review_gate(mb_workspace):
    ws = mb_workspace(WORKSPACE)
    for args in (("approve", "//a:up"), ("reject", "//a:up"),
                 ("reject", "//a:up", "--note", "too dark")):
        result = ws.run(*args)
        assert result.exit_code == 2, result.stderr
        assert result.stdout == ""
        assert result.stderr == f"mb {args[0]} //a:up: //a:up {NOT_A_GATE}"
    assert ws.events() == [], "nothing was built"


def test_labels_resolve_like_mb_build(mb_workspace):
    ws = mb_workspace(WORKSPACE)
    relative = ws.run("approve", ":up", cwd=ws.path / "a")
    assert (relative.exit_code, relative.stderr) == (2, f"mb approve :up: //a:up {NOT_A_GATE}")
    elsewhere = ws.run("-C", str(ws.path / "a"), "reject", "up", cwd=ws.path.parent)
    assert (elsewhere.exit_code, elsewhere.stderr) == (2, f"mb reject up: //a:up {NOT_A_GATE}")
    output = ws.run("approve", "//a:up.txt")
    assert output.stderr == f"mb approve //a:up.txt: //a:up {NOT_A_GATE}", "its producer"
    source = ws.run("reject", "//a:in.txt")
    assert (source.exit_code, source.stderr) == (
        2, "mb reject //a:in.txt: //a:in.txt is a source file, not a target\n")


def test_unknown_labels_get_the_errors_of_mb_build(mb_workspace):
    ws = mb_workspace(WORKSPACE)
    for label in ("//a:uq", "//nowhere:up", "//a:../up", "a:up"):
        built = ws.run("build", label)
        assert built.exit_code == 2 and len(built.stderr.splitlines()) == 1, built.stderr
        for command in ("approve", "reject"):
            result = ws.run(command, label)
            assert (result.exit_code, result.stderr) == (2, built.stderr), (command, label)
    assert ws.run("approve", "//a:up", cwd=ws.path.parent).stderr.startswith("no MB.toml")
