"""`--taps off` switches the ZMQ taps off in the generated scripts instead of trying to bind an
endpoint called "off": the block takes the off addresses, and loopback_sim.grc compiled with
grcc runs with `--taps off` and leaves the taps' port free."""
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pmt
import pytest

from diffsem.link import taps

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("address", ["off", "OFF", "", "none"])
def test_block_with_taps_off_publishes_nothing(address):
    from gnuradio import diffsem

    block = diffsem.zmq_taps(address)
    assert block.address == "off" and isinstance(block.publisher, taps.NoTaps)
    symbols = pmt.init_c32vector(4, np.ones(4, np.complex64))
    block._constellation(pmt.cons(pmt.make_dict(), symbols))
    block._metrics(pmt.to_pmt({"seq": 1, "psnr_db": 20.0}))
    assert block.stats()["sent"] == {} and block.stats()["bad_input"] == 0
    block.close()


def test_publisher_factory_binds_real_addresses():
    pub = taps.publisher("tcp://127.0.0.1:0")
    try:
        assert pub.endpoint.startswith("tcp://127.0.0.1:") and pub.publish("metrics", b"{}")
    finally:
        pub.close()


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_generated_loopback_sim_runs_with_taps_off(tmp_path):
    env = dict(os.environ, GRC_BLOCKS_PATH=str(REPO / "grc"), QT_QPA_PLATFORM="offscreen")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "python"), str(REPO / "gr-diffsem"), env.get("PYTHONPATH", "")])
    proc = subprocess.run([shutil.which("grcc") or "grcc", "-o", str(tmp_path), str(REPO / "flowgraphs" / "loopback_sim.grc")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    script = tmp_path / "loopback_sim.py"
    # the script's default endpoint moved to a port nobody else uses, so that "--taps off did
    # not fall back to the default" is checkable while the script runs
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script.write_text(script.read_text().replace("tcp://127.0.0.1:5610", f"tcp://127.0.0.1:{port}"))
    run = subprocess.Popen([sys.executable, "-u", str(script), "--taps", "off", "-n", "2", "--provider", "cpu",
                            "--out-dir", str(tmp_path / "out")],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env=env, cwd=tmp_path)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and run.poll() is None and not list((tmp_path / "out").glob("*.png")):
            time.sleep(0.5)
        assert run.poll() is None, f"the script stopped early:\n{run.stdout.read()}"
        assert _port_free(port), "the taps bound their default port although --taps off"
        out, _ = run.communicate("\n", timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, out
    assert "ZMQ taps off" in out and "cannot bind" not in out
    assert list((tmp_path / "out").glob("*.png")), f"no image decoded while running:\n{out}"
