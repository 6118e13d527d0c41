"""The `diffsem` program: its subcommands and the grouped measurement / report / baseline commands
reach their modules."""
from __future__ import annotations

import pytest

from diffsem_apps import cli


def test_every_command_module_exists():
    import importlib.util
    for module, *_ in cli.COMMANDS.values():
        assert importlib.util.find_spec(module) is not None, module
    for targets in cli.GROUPS.values():
        for module in targets.values():
            assert importlib.util.find_spec(module) is not None, module


@pytest.mark.parametrize("group", sorted(cli.GROUPS))
def test_group_help_and_unknown_target(group, capsys):
    assert cli.main([group, "--help"]) == 0
    out = capsys.readouterr().out
    assert all(target in out for target in cli.GROUPS[group])
    assert cli.main([group, "nonsense"]) == 2


def test_baseline_digital_prints_the_budget(capsys):
    assert cli.main(["baseline", "digital", "--k", "32", "--budget"]) == 0
    assert '"mode": "bpsk-1/2"' in capsys.readouterr().out
