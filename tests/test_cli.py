"""The `conflictkb` command itself (its commands are tested with what they do)."""

import importlib

from api.cli import _LazyGroup


def test_help_lists_the_lazy_commands_by_their_own_line():
    # `conflictkb --help` shows these lines without importing the commands (api/cli.py)
    for module_attribute, line in _LazyGroup.lazy.values():
        module, attribute = module_attribute.split(":")
        assert getattr(importlib.import_module(module), attribute).get_short_help_str(1000) == line
