"""Every flowgraphs/*.grc compiles with grcc against the repo's block YAML (each in its own temp
dir), and the analog symbol loopback runs headless from its generated Python."""
import importlib.util
import os
import pathlib
import shutil
import subprocess
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
FLOWGRAPHS = sorted((REPO / "flowgraphs").glob("*.grc"))


def _grcc(grc: pathlib.Path, out_dir: pathlib.Path) -> pathlib.Path:
    env = dict(os.environ, GRC_BLOCKS_PATH=str(REPO / "grc"), QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([shutil.which("grcc") or "grcc", "-o", str(out_dir), str(grc)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, f"grcc failed on {grc.name}:\n{proc.stdout}\n{proc.stderr}"
    generated = list(out_dir.glob("*.py"))
    assert generated, f"grcc wrote nothing for {grc.name}"
    return generated[0]


def test_there_are_flowgraphs():
    assert any(f.name == "loopback_symbols.grc" for f in FLOWGRAPHS)


@pytest.mark.parametrize("grc", FLOWGRAPHS, ids=[f.name for f in FLOWGRAPHS])
def test_flowgraph_compiles(grc, tmp_path):
    _grcc(grc, tmp_path)


def test_loopback_symbols_runs_headless(tmp_path):
    script = _grcc(REPO / "flowgraphs" / "loopback_symbols.grc", tmp_path)
    spec = importlib.util.spec_from_file_location("loopback_symbols_generated", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tb = module.loopback_symbols(snr_db=15.0, n_frames=30, seed=4)
    tb.start()
    deadline = time.monotonic() + 60
    while tb.diffsem_symbol_checker_0.stats()["frames"] < 30 and time.monotonic() < deadline:
        time.sleep(0.05)
    tb.stop()
    tb.wait()
    stats = tb.diffsem_symbol_checker_0.stats()
    assert stats["frames"] == 30 and stats["missing"] == 0 and stats["malformed"] == 0
    assert stats["mse_db"] == pytest.approx(-15.0, abs=0.6)
    assert stats["snr_est_db"] == pytest.approx(15.0, abs=1.0)
