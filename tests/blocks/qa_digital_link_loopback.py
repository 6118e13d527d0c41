"""digital_link (GNU Radio side of the digital baseline): the loopbacks' channel arguments and a
link configuration that cannot carry a frame. The gr-fec / PHY parity tests are in
tests/blocks/qa_digital_link.py."""
import numpy as np
import pmt
import pytest

pytest.importorskip("gnuradio.digital")

from diffsem import data  # noqa: E402
from diffsem.baselines import digital as dg  # noqa: E402
from gnuradio import diffsem  # noqa: E402
from gnuradio.diffsem import harness  # noqa: E402


@pytest.fixture(scope="module")
def images():
    x, _ = data.load("test")
    return x[:4]


def test_run_loopback_applies_the_carrier_offset(images):
    """cfo (subcarrier spacings) reaches channel_sim: the receiver measures it, frames still decode."""
    out, metas, txc, rxc = harness.run_loopback(images[:3], 128, "qpsk-1/2", 25.0, seed=1, cfo=0.3)
    assert all(m["status"] in ("ok", "no_image") for m in metas), metas
    assert np.mean([m["cfo"] for m in metas]) == pytest.approx(0.3, abs=0.02)
    out0, metas0, _, _ = harness.run_loopback(images[:3], 128, "qpsk-1/2", 25.0, seed=1)
    assert abs(np.mean([m["cfo"] for m in metas0])) < 0.02


def test_scheme_loopback_takes_cfo(images):
    from diffsem.baselines.linear import LinearScheme
    fg, received = harness.scheme_loopback(LinearScheme(32), images[:2], 25.0, seed=2, cfo=-0.2)
    assert received.all() and fg.shape == images[:2].shape


def test_scheme_loopback_shows_a_lost_frame_as_the_schemes_fill(images):
    """A frame the receiver never finds (-20 dB) is the scheme's decode of a frame with every
    symbol erased, as diffusion_decoder shows it: for the linear code, the training mean."""
    from diffsem.baselines.linear import LinearScheme
    from diffsem.phy.ofdm import ERASED_NOISE_VAR
    scheme = LinearScheme(32)
    fg, received = harness.scheme_loopback(scheme, images[:2], -20.0, seed=2)
    assert not received.any()
    fill = scheme.decode(np.zeros((1, 32, 2), np.float32), np.full(1, -20.0, np.float32),
                         np.full((1, 32), ERASED_NOISE_VAR, np.float32))
    assert np.allclose(fg, fill, atol=1e-5) and fg.std() > 0.05  # an image, not a flat grey


def test_mode_without_room_refuses_images_and_the_receiver_shows_grey(images, caplog):
    """k=32 at BPSK 1/2 holds 1 payload byte, less than the frame's own descriptor, length and
    CRC: the TX does not raise; it refuses each image (logged, counted "no_room") and sends an
    idle frame, and the RX shows grey for each, counted "no_image", as DigitalScheme does."""
    k, mode = 32, "bpsk-1/2"
    assert not dg.bit_budget(k, dg.mode_by_name(mode)).carries_frame
    with caplog.at_level("WARNING", logger="gnuradio.diffsem"):
        out, metas, txc, rxc = harness.run_loopback(images, k, mode, 20.0, seed=3)
    assert "image refused" in caplog.text and "k=32 in bpsk-1/2" in caplog.text
    assert txc["no_room"] == len(images) and txc["sent"] == 0 and txc["phy"]["frames"] == len(images)
    assert [m["status"] for m in metas] == ["no_image"] * len(images)
    assert [m["seq"] for m in metas] == list(range(len(images)))
    assert rxc["no_image"] == len(images) and rxc["frames_out"] == len(images) and rxc["crc_fail"] == 0
    assert np.all(out == dg.GREY)
    scheme = dg.DigitalScheme(k, mode=mode)                       # the library path shows the same
    lib = scheme.decode(scheme.encode(images), np.full(len(images), 20.0), np.full((len(images), k), 0.01))
    assert np.array_equal(lib, out) and scheme.last_stats["no_image"] == len(images)


def test_tx_and_rx_build_for_a_mode_without_room():
    """Building the blocks for such a mode (e.g. a GRC flowgraph at k=8) is not an error either;
    only a k beyond one OFDM frame is."""
    tx, rx = diffsem.digital_link_tx(8, "bpsk-1/2"), diffsem.digital_link_rx(8, "bpsk-1/2")
    assert not tx.budget.carries_frame and tx.stats()["no_room"] == 0 and rx.stats()["no_image"] == 0
    with pytest.raises(ValueError):
        diffsem.digital_link_tx(100000, "bpsk-1/2")


def test_library_and_flowgraph_send_the_same_scrambled_frames(images):
    """Frame i of run_loopback carries seq i, the library Scheme's default for the i-th image of a
    batch: at 30 dB both paths decode every frame into the same images."""
    k, mode = 128, "64qam-2/3"
    out, metas, txc, rxc = harness.run_loopback(images, k, mode, 30.0, seed=4)
    scheme = dg.DigitalScheme(k, mode=mode)
    lib = scheme.decode(scheme.encode(images), np.full(len(images), 30.0), np.full((len(images), k), 1e-3))
    assert [m["status"] for m in metas] == ["ok"] * len(images)
    assert scheme.last_stats["ok"] == len(images) and np.array_equal(lib, out)


class _FakeTx:
    pad_back = 10

    def __init__(self, bursts, samples):
        self.bursts, self.samples = bursts, samples

    def emitted(self):
        return self.bursts, self.samples


class _FakeRx:
    def __init__(self, step):
        self.read, self.step = 0, step

    def samples_read(self):
        self.read += self.step  # the receiver keeps reading while the test polls
        return self.read


def test_wait_for_link_ends_on_the_receivers_progress_not_on_silence():
    """A silent receiver that has not yet read what the TX sent is still working (at low SNR a run
    of lost frames is silent); once it has read everything, quiet_s of silence ends the run."""
    import time
    sink = harness.Collector()
    rx = _FakeRx(step=200)
    assert harness.wait_for_link(sink, 9, _FakeTx(10, 1000), rx, lambda: 10, timeout=30.0, quiet_s=0.1)
    assert rx.read >= 990  # it polled until the receiver had read all but the last burst's padding
    # the TX has not sent every frame yet: no end before the timeout, however long the silence
    t0 = time.monotonic()
    assert not harness.wait_for_link(sink, 9, _FakeTx(3, 300), _FakeRx(step=1000), lambda: 10, timeout=0.5, quiet_s=0.05)
    assert time.monotonic() - t0 >= 0.5
    # the last frame arriving ends it at once
    sink._handle(pmt.cons(pmt.dict_add(pmt.make_dict(), pmt.intern("seq"), pmt.from_long(9)),
                             pmt.init_c32vector(1, [0j])))
    assert harness.wait_for_link(sink, 9, _FakeTx(3, 300), _FakeRx(step=0), lambda: None, timeout=5.0)
