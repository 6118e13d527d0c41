"""digital_link (GNU Radio side of the digital baseline): the loopbacks' channel arguments and a
link configuration that cannot carry a frame. The gr-fec / PHY parity tests are in
tests/qa_digital_link.py."""
import numpy as np
import pytest

pytest.importorskip("gnuradio.digital")

from diffsem import data  # noqa: E402
from diffsem.baselines import digital as dg  # noqa: E402
from gnuradio.diffsem import digital_link as dl  # noqa: E402


@pytest.fixture(scope="module")
def images():
    x, _ = data.load("test")
    return x[:4]


def test_run_loopback_applies_the_carrier_offset(images):
    """cfo (subcarrier spacings) reaches channel_sim: the receiver measures it, frames still decode."""
    out, metas, txc, rxc = dl.run_loopback(images[:3], 128, "qpsk-1/2", 25.0, seed=1, cfo=0.3)
    assert all(m["status"] in ("ok", "no_image") for m in metas), metas
    assert np.mean([m["cfo"] for m in metas]) == pytest.approx(0.3, abs=0.02)
    out0, metas0, _, _ = dl.run_loopback(images[:3], 128, "qpsk-1/2", 25.0, seed=1)
    assert abs(np.mean([m["cfo"] for m in metas0])) < 0.02


def test_scheme_loopback_takes_cfo(images):
    from diffsem.baselines.linear import LinearScheme
    fg, received = dl.scheme_loopback(LinearScheme(32), images[:2], 25.0, seed=2, cfo=-0.2)
    assert received.all() and fg.shape == images[:2].shape
