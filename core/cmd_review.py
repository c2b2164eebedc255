"""`mb approve LABEL` and `mb reject LABEL [--note TEXT]`: human review gates (SPEC §8).

A review gate is a target of the `review` rule, which has not landed: no
rule of this version makes one. The commands exist so that the SPEC's
command line is complete and a user hears why nothing happens: the label is
resolved as `mb build` resolves it (a typo gets the same error), then the
target is reported as not a gate, exit 2 (docs/errors.md).
"""

from __future__ import annotations

import argparse
import os

from mb.errors import LabelError, UserError
from mb.labels import Label, parse_label
from mb.workspace import Workspace, open_workspace


def run(args: argparse.Namespace, start: str) -> int:
    workspace = open_workspace(start)
    label = parse_label(args.label, workspace.cwd_package)
    target = _target(workspace, label, args)
    raise UserError(f"mb {args.command} {args.label}: {target} is not a review gate; "
                    "no rule of this version makes review gates")


def _target(workspace: Workspace, label: Label, args: argparse.Namespace) -> Label:
    """The target `label` names (itself, or the producer of the output file it
    names), through the analysis `mb build` uses, so an unknown label gets the
    same one-line error; a source file is not a target."""
    from mb.analysis import Analysis
    from mb.cmd_build import report_plugin_failures
    from mb.plugins import load_plugins
    from mb.statcache import StatCache

    plugins = load_plugins(args.plugins)
    report_plugin_failures(plugins, args.verbose)
    statcache = StatCache(os.path.join(workspace.state_dir, "statcache.bin"))
    target = Analysis(workspace, plugins, statcache.digest).file_label_target(label)
    if target is None:
        raise LabelError(f"mb {args.command} {args.label}: {label} is a source file, "
                         "not a target")
    return target
