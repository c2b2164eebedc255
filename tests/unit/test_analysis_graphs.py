"""Analysis of random small graphs of genrules against a model of their dependencies.

Targets in two packages read each other through target labels, file labels
of outputs (`t1.out`, `:t1.out`, `//q:t1.out`), sources that exist and a
source that is missing, and are analysed in a random order. Since a genrule's
outputs are its `outs`, the true dependency graph is known without mb: the
analysis must report a cycle exactly when that graph has one, and otherwise
give every target exactly its true dependencies and never take an output for
a missing source. (This found cycles through file labels that went
unreported, and dependencies recorded as missing sources, when a target was
entered while the producer of a file it reads was still being analysed.)
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from mb.analysis import Analysis
from mb.digest import digest_file
from mb.errors import CycleError
from mb.labels import Label
from mb.plugins import Plugins, load_plugins
from mb.workspace import open_workspace

CASES = 250


@pytest.fixture(scope="module")
def plugins() -> Plugins:
    return load_plugins()


def random_graph(seed: int) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Target -> package, and target -> srcs (each target's one output is `<name>.out`)."""
    rnd = random.Random(seed)
    names = [f"t{i}" for i in range(rnd.randint(2, 5))]
    package = {name: "pq"[i % 2] for i, name in enumerate(names)}
    srcs: dict[str, list[str]] = {}
    for name in names:
        chosen = []
        for _ in range(rnd.randint(0, 3)):
            other = rnd.choice(names)
            here = package[other] == package[name]
            prefix = ":" if here else f"//{package[other]}:"
            chosen.append(rnd.choice([
                f"{prefix}{other}", f"{prefix}{other}.out",
                f"{other}.out" if here else f"{prefix}{other}.out",
                "missing.txt", "here.txt"]))
        srcs[name] = list(dict.fromkeys(chosen))
    return package, srcs


def true_dependencies(package: dict[str, str], srcs: dict[str, list[str]]) -> dict[str, set[str]]:
    deps: dict[str, set[str]] = {}
    for name, items in srcs.items():
        deps[name] = set()
        for item in items:
            if item in ("missing.txt", "here.txt"):
                continue
            other = item.rsplit(":", 1)[-1].removesuffix(".out")
            deps[name].add(other)
    return deps


def has_cycle(deps: dict[str, set[str]]) -> bool:
    state: dict[str, int] = {}

    def visit(name: str) -> bool:
        state[name] = 1
        for other in deps[name]:
            if state.get(other) == 1 or (other not in state and visit(other)):
                return True
        state[name] = 2
        return False

    return any(name not in state and visit(name) for name in deps)


@pytest.mark.parametrize("seed", range(CASES))
def test_analysis_agrees_with_the_true_graph(tmp_path: Path, plugins: Plugins,
                                             monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    monkeypatch.delenv("MB_CACHE_DIR", raising=False)
    package, srcs = random_graph(seed)
    (tmp_path / "MB.toml").write_text("")
    for pkg in "pq":
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "here.txt").write_text("x")
        (tmp_path / pkg / "BUILD.toml").write_text("".join(
            f'[{name}]\nrule = "genrule"\nouts = ["{name}.out"]\n'
            f'srcs = {json.dumps(srcs[name])}\ncmd = "true"\n\n'
            for name in srcs if package[name] == pkg))
    deps = true_dependencies(package, srcs)
    order = list(srcs)
    random.Random(seed).shuffle(order)
    analysis = Analysis(open_workspace(str(tmp_path)), plugins, digest_file)
    try:
        for name in order:
            analysis.analyze(Label(package[name], name))
    except CycleError as cycle:
        assert has_cycle(deps), f"no cycle in {srcs}, but reported {cycle}"
        labels = [Label(*text[2:].split(":")) for text in cycle.labels]
        assert labels[0] == labels[-1]
        for reader, read in zip(labels, labels[1:]):
            assert read.name in deps[reader.name], f"{cycle} is not a path of {srcs}"
        return
    assert not has_cycle(deps), f"the cycle in {srcs} was not reported"
    for name in srcs:
        analyzed = analysis.analyzed[Label(package[name], name)]
        assert {label.name for label in analyzed.deps} == deps[name], (name, srcs)
        assert not [s for s in analyzed.sources if s.endswith(".out")], (name, srcs)
