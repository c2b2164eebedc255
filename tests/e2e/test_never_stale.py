"""A build is never stale: random edit sequences against a model of the outputs.

Each case makes a small random graph of genrules (each output is its name
followed by the bytes of what it reads, sources and other targets), then
runs six random steps: edit a source, write back the same bytes, touch it,
rewire a target in BUILD.toml, delete `mb-out/`, sometimes within the racy
window, sometimes after it. After every `mb build` each output must equal
the model's. The no-op fast path, incremental builds and full builds are
all taken along the way; whichever one runs, the outputs must be right.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time

import pytest

CASES = 8
STEPS = 6


def expected_outputs(sources: dict[str, str], targets: dict[str, list[str]]) -> dict[str, str]:
    made: dict[str, str] = {}

    def content(name: str) -> str:
        if name not in made:
            parts = [content(src[1:]) if src.startswith(":") else sources[src]
                     for src in targets[name]]
            made[name] = f"[{name}]" + "".join(parts)
        return made[name]

    for name in targets:
        content(name)
    return made


def build_file(targets: dict[str, list[str]]) -> str:
    text = ""
    for name, srcs in targets.items():
        command = (f"(printf '[{name}]'; cat $(SRCS)) > $@" if srcs
                   else f"printf '[{name}]' > $@")
        text += (f'[{name}]\nrule = "genrule"\nsrcs = {json.dumps(srcs)}\n'
                 f'outs = ["{name}.out"]\ncmd = {json.dumps(command)}\n\n')
    return text


@pytest.mark.parametrize("seed", range(CASES))
def test_outputs_follow_every_edit(mb_workspace, seed: int) -> None:  # type: ignore[no-untyped-def]
    rnd = random.Random(seed)
    sources = {f"s{i}.txt": f"v{rnd.randint(0, 3)}\n" for i in range(3)}
    names = [f"t{i}" for i in range(rnd.randint(2, 6))]
    targets = {
        name: rnd.sample(list(sources), rnd.randint(0, 2))
        + [f":{other}" for other in rnd.sample(names[:i], min(i, rnd.randint(0, 2)))]
        for i, name in enumerate(names)}
    ws = mb_workspace({**{f"p/{s}": text for s, text in sources.items()},
                       "p/BUILD.toml": build_file(targets)})
    ws.env["MB_RACY_SECONDS"] = rnd.choice(["0", "2"])
    history = []
    for step in range(STEPS):
        change = rnd.choice(["edit", "edit", "same bytes", "touch", "rewire", "rm mb-out"])
        source = rnd.choice(list(sources))
        if change == "edit":
            sources[source] = f"v{rnd.randint(0, 3)}\n"
            (ws.path / "p" / source).write_text(sources[source])
        elif change == "same bytes":
            (ws.path / "p" / source).write_text(sources[source])
        elif change == "touch":
            os.utime(ws.path / "p" / source)
        elif change == "rewire":
            name = rnd.choice(names)
            targets[name] = (rnd.sample(list(sources), rnd.randint(0, 2))
                             + [src for src in targets[name] if src.startswith(":")])
            (ws.path / "p/BUILD.toml").write_text(build_file(targets))
        else:
            shutil.rmtree(ws.path / "mb-out", ignore_errors=True)
        if rnd.random() < 0.2:
            time.sleep(rnd.choice([0.01, 1.1]))
        history.append(change)
        result = ws.run("build", "-j2")
        assert result.exit_code == 0, (history, result.stderr)
        for name, text in expected_outputs(sources, targets).items():
            assert ws.out(f"p/{name}.out").read_text() == text, (history, name, targets)
