"""Every flowgraphs/*.grc compiles with grcc against the repo's block YAML (each in its own temp
dir), and the analog symbol loopback runs headless from its generated Python."""
import time

import pytest
from support import REPO, grcc, import_script

FLOWGRAPHS = sorted((REPO / "flowgraphs").glob("*.grc"))


def test_there_are_flowgraphs():
    assert any(f.name == "loopback_symbols.grc" for f in FLOWGRAPHS)


@pytest.mark.parametrize("grc", FLOWGRAPHS, ids=[f.name for f in FLOWGRAPHS])
def test_flowgraph_compiles(grc, tmp_path):
    grcc(grc, tmp_path)


def test_loopback_symbols_runs_headless(tmp_path):
    module = import_script(grcc("loopback_symbols", tmp_path), "loopback_symbols_generated")
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
