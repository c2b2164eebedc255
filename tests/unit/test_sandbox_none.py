"""The `none` sandbox (`mb.sandbox.none`): a symlink forest of the workspace, host environment.

Actions here are real processes (`sh`), each a few milliseconds.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mb.sandbox.base import ProcessRegistry, SandboxRequest, SandboxResult
from mb.sandbox.dir import DirSandbox
from mb.sandbox.linux import LinuxSandbox
from mb.sandbox.none import NoSandbox, workspace_forest, workspace_of


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    for name, text in {"p/a.txt": "declared\n", "p/undeclared.txt": "undeclared\n",
                       "p/sub/deep.txt": "deep\n", "q/x.txt": "x\n", "top.txt": "top\n",
                       ".mb/cache/blob": "blob\n", "mb-out/p/old.txt": "old\n",
                       "p/o.txt": "a stray source where an output goes\n"}.items():
        (ws / name).parent.mkdir(parents=True, exist_ok=True)
        (ws / name).write_text(text)
    return ws


def snapshot(path: Path) -> dict[str, str]:
    """Every file under `path` with its content (symlinks as their target)."""
    found = {}
    for directory, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(directory, name)
            rel = os.path.relpath(full, path)
            if os.path.islink(full):
                found[rel] = "-> " + os.readlink(full)
            elif os.path.isfile(full):
                found[rel] = Path(full).read_text()
    return found


def run(root: Path, workspace: Path, argv: tuple[str, ...], inputs: dict[str, str] | None = None,
        outputs: tuple[str, ...] = (), env: dict[str, str] | None = None) -> SandboxResult:
    request = SandboxRequest(root=str(root), inputs=inputs or {}, outputs=outputs, argv=argv,
                             env=env or {}, timeout=30, network=False,
                             workspace=str(workspace))
    return NoSandbox(ProcessRegistry()).run(request)


# --- the forest --------------------------------------------------------------------------


def test_the_forest_links_every_workspace_entry_but_mb_state_and_outputs(
        workspace: Path) -> None:
    ws = str(workspace)
    assert workspace_forest(ws, {}, ()) == {
        "p": f"{ws}/p", "q": f"{ws}/q", "top.txt": f"{ws}/top.txt"}


def test_directories_on_the_way_to_an_output_are_real_and_hold_the_rest(
        workspace: Path) -> None:
    ws = str(workspace)
    links = workspace_forest(ws, {"p/a.txt": f"{ws}/p/a.txt"}, ("p/o.txt", "p/new/dir/n.txt"))
    assert links == {
        "q": f"{ws}/q", "top.txt": f"{ws}/top.txt",
        "p/a.txt": f"{ws}/p/a.txt", "p/undeclared.txt": f"{ws}/p/undeclared.txt",
        "p/sub": f"{ws}/p/sub",
        # p/o.txt is an output: not a link to the workspace's file of that name
    }


def test_an_input_from_the_cache_or_mb_out_is_linked_where_it_is_declared(
        workspace: Path, tmp_path: Path) -> None:
    ws = str(workspace)
    blob = str(tmp_path / "cache" / "cas" / "ab12")
    placed = f"{ws}/mb-out/p/old.txt"
    links = workspace_forest(ws, {"p/sub/gen.txt": blob, "r/old.txt": placed}, ())
    assert links == {
        "q": f"{ws}/q", "top.txt": f"{ws}/top.txt",
        "p/a.txt": f"{ws}/p/a.txt", "p/undeclared.txt": f"{ws}/p/undeclared.txt",
        "p/o.txt": f"{ws}/p/o.txt",
        "p/sub/deep.txt": f"{ws}/p/sub/deep.txt", "p/sub/gen.txt": blob,
        "r/old.txt": placed,
    }


def test_the_workspace_of_a_sandbox_directory() -> None:
    assert workspace_of("/w/s/.mb/sandbox/s-1234abcd/mb-action_0") == "/w/s"
    with pytest.raises(ValueError):
        workspace_of("/tmp/somewhere/else")


# --- running -------------------------------------------------------------------------------


def test_an_undeclared_file_is_readable_and_the_output_stays_out_of_the_workspace(
        tmp_path: Path, workspace: Path) -> None:
    before = snapshot(workspace)
    root = tmp_path / "sandbox"
    script = "cat p/undeclared.txt p/sub/deep.txt top.txt q/x.txt > p/o.txt"
    result = run(root, workspace, ("sh", "-c", script), {"p/a.txt": str(workspace / "p/a.txt")},
                 outputs=("p/o.txt",))
    assert (result.exit_code, result.missing_outputs) == (0, ()), result.stderr_tail
    assert (root / "p/o.txt").read_text() == "undeclared\ndeep\ntop\nx\n"
    assert not (root / "p/o.txt").is_symlink()
    assert snapshot(workspace) == before, "nothing written into the source tree"
    assert not (root / ".mb").exists() and not (root / "mb-out").exists()


def test_the_dir_sandbox_does_not_see_the_undeclared_file(tmp_path: Path,
                                                            workspace: Path) -> None:
    request = SandboxRequest(root=str(tmp_path / "sandbox"), inputs={}, outputs=("o.txt",),
                             argv=("sh", "-c", "cat p/undeclared.txt > o.txt"), env={},
                             timeout=30, network=False, workspace=str(workspace))
    result = DirSandbox(ProcessRegistry()).run(request)
    assert result.exit_code != 0
    assert "p/undeclared.txt" in result.stderr_tail


def test_the_host_environment_is_kept_plus_what_the_action_declares(
        tmp_path: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MB_TEST_HOST", "from the host")
    root = tmp_path / "sandbox"
    result = run(root, workspace, ("sh", "-c", 'echo "$MB_TEST_HOST/$DECLARED/$HOME" > e'),
                 outputs=("e",), env={"DECLARED": "declared"})
    assert result.exit_code == 0, result.stderr_tail
    assert (root / "e").read_text() == f"from the host/declared/{os.environ['HOME']}\n"


def test_a_reused_root_follows_each_actions_forest_without_touching_the_workspace(
        tmp_path: Path, workspace: Path) -> None:
    """A directory is a symlink for one action, real for the next (an output under it),
    a symlink again: the sandbox's symlinks are stashed and reused, never through a
    stashed symlink to a workspace directory."""
    before = snapshot(workspace)
    root = tmp_path / "sandbox"
    listing = "ls q > out.txt"
    for outputs, expected in [((), None), (("q/new.txt",), "new"), ((), None),
                              (("q/new.txt",), "new"), ((), None)]:
        script = "cat q/x.txt" + (f" > {outputs[0]}" if outputs else "")
        result = run(root, workspace, ("sh", "-c", f"{script}; {listing}"),
                     outputs=(*outputs, "out.txt"))
        assert result.exit_code == 0, result.stderr_tail
        assert os.path.islink(root / "q") == (not outputs)
        names = (root / "out.txt").read_text().split()
        assert names == (["new.txt", "x.txt"] if outputs else ["x.txt"])
        assert snapshot(workspace) == before
    assert run(root, workspace, ("true",)).exit_code == 0


def test_the_none_sandbox_never_caches_and_the_others_do() -> None:
    assert NoSandbox.caches_results is False
    assert DirSandbox.caches_results is True
    assert LinuxSandbox.caches_results is True
