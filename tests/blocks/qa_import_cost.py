"""Start-up cost of the GNU Radio block package: `from gnuradio import diffsem` (what every GRC
flowgraph does) must not import torch (~2 s on the project's CPU). Behavioural check in a fresh
interpreter: torch stays out of sys.modules until a torch-using function is called."""
import json
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("gnuradio.gr")


def _modules_after(code: str) -> dict:
    """Run `code` in a fresh interpreter; which of torch / gnuradio.diffsem it left loaded."""
    probe = textwrap.dedent(code) + ("\nimport json, sys\nprint(json.dumps({m: m in sys.modules "
                                     "for m in ('torch', 'gnuradio.diffsem')}))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_block_package_does_not_import_torch():
    loaded = _modules_after("""
        from gnuradio import diffsem
        assert diffsem.channel_sim and diffsem.digital_link_tx and diffsem.diffusion_decoder
    """)
    assert loaded["gnuradio.diffsem"]
    assert not loaded["torch"], "`from gnuradio import diffsem` imported torch: keep torch imports lazy"


def test_channel_block_and_numpy_helpers_do_not_import_torch():
    loaded = _modules_after("""
        from gnuradio import diffsem
        diffsem.channel_sim(channel="selective")  # taps from diffsem.channel's power-delay profile
        from diffsem.channel import noise_var_to_snr_db, snr_db_to_noise_var
        assert abs(noise_var_to_snr_db(snr_db_to_noise_var(10.0)) - 10.0) < 1e-9
    """)
    assert not loaded["torch"]


def test_torch_helpers_import_torch_when_called():
    loaded = _modules_after("""
        import sys
        from diffsem import channel
        assert "torch" not in sys.modules
        assert abs(float(channel.selective_pdp().sum()) - 1.0) < 1e-6
    """)
    assert loaded["torch"]
