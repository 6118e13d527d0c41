"""Block tests of gnuradio.diffsem.channel_sim (gr-channels inside; SNR convention of docs/design/conventions.md)."""
import numpy as np
import pytest

from diffsem import phy
from gnuradio import diffsem
from support import run_block

channel_sim = diffsem.channel_sim


def test_awgn_noise_follows_snr_convention():
    for snr_db in (0.0, 20.0):
        y = run_block(channel_sim(snr_db=snr_db, seed=1), np.zeros(100000))
        # time-domain variance that gives Es/N0 = snr per payload symbol for the TX's scaling
        assert np.var(y) == pytest.approx(64 / 52 * 10 ** (-snr_db / 10), rel=0.03)
        assert np.var(y) == pytest.approx(phy.noise_voltage_for_snr(snr_db) ** 2, rel=0.03)


def test_set_snr_db_callback():
    ch = channel_sim(snr_db=10.0, seed=2)
    ch.set_snr_db(30.0)
    assert ch.snr_db() == 30.0
    assert np.var(run_block(ch, np.zeros(50000))) == pytest.approx(phy.noise_voltage_for_snr(30.0) ** 2, rel=0.05)


def test_cfo_in_subcarrier_spacings():
    y = run_block(channel_sim(snr_db=200.0, cfo=0.3), np.ones(4000))
    step = np.angle(np.mean(y[1001:] * np.conj(y[1000:-1])))
    assert step == pytest.approx(2 * np.pi * 0.3 / 64, rel=1e-3)


def test_timing_offset_delays_by_fraction():
    impulse = np.zeros(200)
    impulse[50] = 1.0
    base = run_block(channel_sim(snr_db=200.0, timing_offset=0.0), impulse)
    shifted = run_block(channel_sim(snr_db=200.0, timing_offset=0.5), impulse)

    def delay(y):
        spec = np.fft.fft(y)[:20]
        return -np.polyfit(np.arange(20) * 2 * np.pi / y.size, np.unwrap(np.angle(spec)), 1)[0]
    assert delay(shifted) - delay(base) == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("channel", ["rayleigh", "selective"])
def test_fading_is_power_normalised(channel):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(60000) + 1j * rng.standard_normal(60000)) / np.sqrt(2)
    powers = [np.mean(np.abs(run_block(channel_sim(snr_db=200.0, channel=channel, seed=s, doppler=0.02), x)) ** 2)
              for s in range(4)]
    assert np.mean(powers) == pytest.approx(1.0, abs=0.12)


def test_unknown_channel_refused():
    with pytest.raises(ValueError):
        channel_sim(channel="nakagami")


def test_selective_taps_match_the_library_channel_without_torch():
    """channel_sim's selective taps come from the numpy power-delay profile (no torch import);
    it is the library channel's profile to float32 rounding."""
    from diffsem.channel import selective_pdp, selective_pdp_numpy
    assert selective_pdp_numpy().sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(selective_pdp_numpy(), selective_pdp().numpy(), rtol=1e-6)
