"""mb: a build system for generative-media pipelines.

This module is the stable plugin API of SPEC §10 and nothing else.
"""

from mb.actionio import ActionIO
from mb.attributes import File, Files
from mb.context import RuleContext
from mb.errors import ActionError, RuleError
from mb.hookspecs import hookimpl
from mb.labels import Label
from mb.ruledef import rule

__all__ = ["ActionError", "ActionIO", "File", "Files", "Label", "RuleContext", "RuleError", "hookimpl", "rule"]
__version__ = "0.1.0"
