"""The CMake install, run from the prefix with the source tree off sys.path: `P/bin/diffsem`, the
packages and the models come from P, and the installed loopback_sim.py (compiled with grcc at build
time) decodes images with no PYTHONPATH and no --models-dir.

Under ctest ($DIFFSEM_BUILD_DIR set) the ctest build tree is installed into a staging prefix inside
it (`cmake --install build --prefix build/test-install`); otherwise the tree is configured, built
and installed into a temporary prefix (grcc dominates: ~10-50 s)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from support import REPO

pytestmark = pytest.mark.skipif(shutil.which("cmake") is None, reason="needs cmake")


def _clean_env(**extra):
    """The user's environment with nothing pointing into the source tree."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GRC_BLOCKS_PATH", "DIFFSEM_MODELS")}
    env.update(QT_QPA_PLATFORM="offscreen", **extra)
    return env


def _run(cmd, **kw):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{cmd}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    build = os.environ.get("DIFFSEM_BUILD_DIR")
    if build and (Path(build) / "CMakeCache.txt").is_file():
        p = Path(build) / "test-install"
        shutil.rmtree(p, ignore_errors=True)
    else:
        tmp = tmp_path_factory.mktemp("install")
        build, p = tmp / "build", tmp / "prefix"
        _run(["cmake", "-S", REPO, "-B", build, f"-DCMAKE_INSTALL_PREFIX={p}"])
        _run(["cmake", "--build", build, "-j2"])
    out = _run(["cmake", "--install", build, "--prefix", p]).stdout
    assert "export PYTHONPATH=" in out  # the install says how to use the prefix
    return p


def _site(prefix: Path) -> Path:
    (init,) = prefix.glob("lib/python3*/*-packages/diffsem/__init__.py")
    return init.parent.parent


def test_installed_packages_and_models_come_from_the_prefix(prefix, tmp_path):
    site = _site(prefix)
    assert (prefix / "bin" / "diffsem").stat().st_mode & 0o111
    probe = ("import json, diffsem, diffsem_apps; from gnuradio import diffsem as blocks; "
             "print(json.dumps([diffsem.__file__, diffsem_apps.__file__, blocks.__file__, str(diffsem.models_dir())]))")
    # the shebang's Python, with P's site-packages on PYTHONPATH as docs/guide/install.md says
    python = (prefix / "bin" / "diffsem").read_text().splitlines()[0][2:]
    paths = json.loads(_run([python, "-c", probe], cwd=tmp_path, env=_clean_env(PYTHONPATH=str(site))).stdout)
    for path in paths[:3]:
        assert Path(path).resolve().is_relative_to(site.resolve()), paths
    assert Path(paths[3]) == (prefix / "share" / "gr-diffsem" / "models").resolve()
    assert (Path(paths[3]) / "encoder_k128.json").is_file()


def test_installed_diffsem_program_runs_without_pythonpath(prefix, tmp_path):
    out = _run([prefix / "bin" / "diffsem", "--help"], cwd=tmp_path, env=_clean_env()).stdout
    assert "measure" in out and "demo" in out
    out = _run([prefix / "bin" / "diffsem", "measure", "--help"], cwd=tmp_path, env=_clean_env()).stdout
    assert "phy" in out


def test_installed_loopback_sim_decodes_images(prefix, tmp_path):
    script = prefix / "share" / "gr-diffsem" / "flowgraphs" / "loopback_sim.py"
    assert script.stat().st_mode & 0o111
    n = 3
    out_dir = tmp_path / "images"
    # --taps off only keeps this test off the default ZMQ port other runs may hold
    proc = subprocess.Popen([str(script), "-n", str(n), "--taps", "off", "--out-dir", str(out_dir)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=tmp_path, env=_clean_env())
    deadline = time.monotonic() + 120
    while len(list(out_dir.glob("rx_0*.png"))) < n and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    try:
        log, _ = proc.communicate("\n", timeout=30)  # "Press Enter to quit"
    finally:
        proc.kill()
    assert proc.returncode == 0, log
    assert len(list(out_dir.glob("rx_0*.png"))) == n, log
    assert "Traceback" not in log, log
