"""`genrule`: a Bazel-style shell command with `$(SRCS)`, `$(OUTS)`, `$<`, `$@`, `$(location L)`.

Registered through the `mb` entry-point group like any third-party plugin.
A simple command (plain or quoted words, at most one `< input` and one
`> output` naming a declared source and output) is split and executed
directly, with mb opening the redirected files: spawning bash costs 2.6
times a plain exec (more than the command itself for `cp` or `tr`), and
the result is the same. Anything else runs in bash.
"""

from __future__ import annotations

import re
from typing import Any

import attrs

import mb
from mb.labels import parse_label

_VARIABLE = re.compile(r"\$\$|\$\((SRCS|OUTS|location\s+[^)]*)\)|\$<|\$@|\$\(([^)]*)\)|\$")
#: Characters of an unquoted word that mean nothing to bash.
_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./:=,+@%^-")
#: bash's builtins and reserved words (`compgen -b -k`): a command starting with one
#: runs in bash, since a program of the same name (coreutils' `echo`, `test`,
#: `kill`) need not behave the same (`echo --version`).
_SHELL_WORDS = frozenset("""
    . : [ alias bg bind break builtin caller cd command compgen complete compopt continue
    declare dirs disown echo enable eval exec exit export false fc fg getopts hash help
    history jobs kill let local logout mapfile popd printf pushd pwd read readarray readonly
    return set shift shopt source suspend test times trap true type typeset ulimit umask
    unalias unset wait if then else elif fi case esac for select while until do done in
    function time { } ! [[ ]] coproc
""".split())
#: A name a process environment accepts.
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@attrs.frozen
class GenruleAttrs:
    cmd: str
    outs: tuple[str, ...]
    srcs: mb.Files = mb.Files()
    tools: mb.Files = mb.Files()
    env: dict[str, str] = attrs.field(factory=dict)


def command_path(path: str) -> str:
    """A workspace path as a command's argument: `./-n` for a name starting with `-`
    (valid in labels), which a program would otherwise take for an option (`cat -`
    reads stdin, `echo -n` prints nothing)."""
    return "./" + path if path.startswith("-") else path


def expand_command(cmd: str, srcs: list[str], outs: list[str], locate: object) -> str:
    """Substitute make-style variables; an unknown one is a user error."""
    srcs = [command_path(p) for p in srcs]
    outs = [command_path(p) for p in outs]

    def replace(match: re.Match[str]) -> str:
        text = match.group(0)
        if text == "$$":
            return "$"
        if text == "$<":
            if len(srcs) != 1:
                raise mb.RuleError(f"'$<' needs exactly one file in srcs, got {len(srcs)}",
                                  attribute="cmd")
            return srcs[0]
        if text == "$@":
            if len(outs) != 1:
                raise mb.RuleError(f"'$@' needs exactly one file in outs, got {len(outs)}",
                                  attribute="cmd")
            return outs[0]
        if text == "$(SRCS)":
            return " ".join(srcs)
        if text == "$(OUTS)":
            return " ".join(outs)
        if (match.group(1) or "").startswith("location"):  # not `$(locations X)`
            label = text[len("$(location"):-1].strip()
            if "$" in label:
                raise mb.RuleError(f"$(location ...) takes a label, got {label!r}; write "
                                   "$(location LABEL) for one file, or use $(SRCS)",
                                   attribute="cmd")
            return command_path(locate(label))  # type: ignore[operator]
        if text == "$":
            raise mb.RuleError(
                "a lone '$' in cmd; write '$$' for a literal '$' or use $(SRCS), $(OUTS), $<, $@",
                attribute="cmd")
        raise mb.RuleError(
            f"unknown variable {text!r} in cmd; known: $(SRCS) $(OUTS) $< $@ $(location LABEL) $$",
            attribute="cmd")

    return _VARIABLE.sub(replace, cmd)


@mb.rule("genrule", attrs=GenruleAttrs, version="1")
def genrule(ctx: mb.RuleContext, a: GenruleAttrs) -> None:
    """Run a shell command that reads `srcs` and writes `outs`.

    In bash, or, when it is one simple command, as that program with mb opening its
    redirections (docs/rules.md)."""
    if not a.outs:
        raise mb.RuleError("'outs' must name at least one output file", attribute="outs")
    for name in a.env:
        if not _ENV_NAME.fullmatch(name):
            raise mb.RuleError(f"'env' key {name!r} is not a valid environment variable name "
                               "(letters, digits and _, not starting with a digit)",
                               attribute="env")
    outputs = _declare_outputs(ctx, a.outs)
    srcs = ctx.paths(a.srcs)
    tools = ctx.paths(a.tools)
    outs = ctx.paths(outputs)
    extra: list[str] = []

    def locate(text: str) -> str:
        try:
            label = parse_label(text, ctx.package)
        except Exception as exc:
            raise mb.RuleError(f"$(location {text}): {exc}", attribute="cmd") from None
        if label.package == ctx.package and label.path() in outs:
            return label.path()  # one of this target's own outputs (Bazel allows it)
        path = ctx.path(mb.File(label))
        extra.append(path)
        return path

    command = expand_command(a.cmd, srcs, outs, locate)
    if not command.split():
        raise mb.RuleError("'cmd' is empty", attribute="cmd")
    inputs = [*srcs, *tools, *extra]
    description = f"genrule -> {', '.join(a.outs)}"
    simple = split_simple(command)
    if simple is not None:
        argv, stdin, stdout = simple
        by_path = {ctx.path(o): o for o in outputs}
        if (argv[0] not in _SHELL_WORDS and "=" not in argv[0]
                and (stdin is None or stdin in inputs) and (stdout is None or stdout in by_path)):
            ctx.run(argv, inputs=inputs, outputs=outputs, env=a.env, description=description,
                    stdin=stdin, stdout=by_path[stdout] if stdout is not None else None)
            return
    ctx.run(["bash", "-c", command], inputs=inputs, outputs=outputs, env=a.env,
            description=description)


def _declare_outputs(ctx: mb.RuleContext, names: tuple[str, ...]) -> list[Any]:
    """`ctx.output` for each name; every bad name is reported, not only the first."""
    outputs: list[Any] = []
    problems: list[str] = []
    for name in names:
        try:
            outputs.append(ctx.output(name))
        except Exception as exc:  # ctx.output words it as "LABEL: problem"
            problems.append(str(exc).split(": ", 1)[-1])
    if problems:
        raise mb.RuleError("; ".join(problems), attribute="outs")
    return outputs


def split_simple(command: str) -> tuple[list[str], str | None, str | None] | None:
    """(argv, stdin, stdout) of a command bash runs as one program, else None.

    Accepted: words of plain characters, 'single-quoted' text, "double-quoted"
    text without `$`, backquote, backslash or `!`, and at most one `< file` and
    one `> file`, separated by blanks. Everything else (pipes, `;`, globs,
    variables, `>>`, `2>`, a redirection glued to a word) is left to bash.
    """
    words: list[str] = []
    redirects: dict[str, str] = {}
    waiting: str | None = None  # "<" or ">" before its file name
    i, n = 0, len(command)
    while i < n:
        char = command[i]
        if char in " \t":
            i += 1
            continue
        if char in "<>":
            if waiting is not None or command[i + 1:i + 2] in ("<", ">", "&", "|", "("):
                return None
            waiting = char
            i += 1
            continue
        parts: list[str] = []
        while i < n and command[i] not in " \t":
            char = command[i]
            if char in "'\"":
                end = command.find(char, i + 1)
                if end < 0:
                    return None
                quoted = command[i + 1:end]
                if char == '"' and any(c in quoted for c in "$`\\!"):
                    return None
                parts.append(quoted)
                i = end + 1
            elif char in _PLAIN:
                parts.append(char)
                i += 1
            else:
                return None
        word = "".join(parts)
        if waiting is None:
            words.append(word)
        elif waiting in redirects or not word:
            return None
        else:
            redirects[waiting] = word
            waiting = None
    if waiting is not None or not words:
        return None
    return words, redirects.get("<"), redirects.get(">")


@mb.hookimpl
def mb_rules() -> list[mb.ruledef.RuleDef]:
    return [genrule]
