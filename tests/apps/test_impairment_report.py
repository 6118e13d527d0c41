"""`diffsem report impairments`' loopback: the semantic link through an 8-bit ADC (HackRF-like)
still decodes."""
from __future__ import annotations

import numpy as np
from gnuradio import diffsem
from support import TINY_K

from diffsem_apps.impairment_report import impaired_loopback


def test_loopback_with_hackrf_like_8bit_adc_still_decodes(tiny_models):
    tb = impaired_loopback(dict(adc_bits=8, adc_full_scale=3.0), None, k=TINY_K, snr_db=15.0,
                           decoders=["deepjscc"], count=6, models_dir=str(tiny_models), provider="cpu",
                           classifier_card="none")
    assert isinstance(tb.chan, diffsem.channel_sim) and tb.chan.adc_bits == 8
    assert tb.run_until_drained(timeout_s=120, quiet_s=5)
    acc = tb.metrics[0].accounting()
    assert acc["sent"] == 6 == acc["decoded"]
    assert abs(np.mean([r["snr_est_db"] for r in tb.metrics[0].records]) - 15.0) < 1.5
