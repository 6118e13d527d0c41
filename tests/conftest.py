"""Fixtures shared by tests/core, tests/blocks, tests/flowgraphs and tests/apps (the plain helpers
they share are in support.py)."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

import pytest

from support import export_tiny_models


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """A folder with the tiny exported models (support.export_tiny_models, k = support.TINY_K)."""
    folder = tmp_path_factory.mktemp("models")
    export_tiny_models(folder)
    return folder


@pytest.fixture(scope="session")
def test_split():
    """(images [N,1,28,28], labels) of the Fashion-MNIST test split."""
    from diffsem import data
    return data.load("test")


@pytest.fixture
def run_command():
    """run_command(module, argv) -> exit status: a core subcommand module (add_arguments + run) as
    the `diffsem` program runs it, without the apps package."""
    def run(module, argv) -> int:
        mod = importlib.import_module(module) if isinstance(module, str) else module
        parser = argparse.ArgumentParser(prog=f"diffsem {mod.__name__.rsplit('.', 1)[-1]}")
        mod.add_arguments(parser)
        return int(mod.run(parser.parse_args([str(a) for a in argv])) or 0)
    return run


# One test process loads GNU Radio (its ControlPort thrift pool starts at import), UHD's logger,
# ZMQ, torch and ONNX Runtime together, and their threads outlive the tests. Tearing them down at
# interpreter exit crashed once (SIGSEGV: exit 139 after "596 passed"; GNU Radio's thrift booter
# is a known exit-time crash, gnuradio/gnuradio#3792), and once more between the summary and the
# last plugin's unconfigure ("656 passed", exit 139). When pytest is the program, the process
# ends with pytest's verdict as soon as the summary is written.
_session = None


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_sessionfinish(session):
    """Outermost wrapper: runs after every other sessionfinish, the terminal summary included."""
    global _session
    _session = session
    yield
    _exit_with_the_verdict()


def _exit_with_the_verdict() -> None:
    if _session is None or not _pytest_is_the_program():
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(_session.exitstatus))


def _pytest_is_the_program() -> bool:
    main = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return (os.path.basename(main) in ("pytest", "py.test")
            or main == os.path.join(os.path.dirname(pytest.__file__), "__main__.py"))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):  # a session that ended before sessionfinish's wrapper could exit
    _exit_with_the_verdict()
