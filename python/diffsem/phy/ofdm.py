"""The OFDM frame layout shared by the GNU Radio PHY and the training channel.

One place defines which subcarriers carry payload, so the frequency-selective channel used in
training puts symbol i on the same subcarrier the GNU Radio serializer does: OFDM symbol i // n,
data carrier i % n, with n = len(data_carriers) (the order of `ofdm_carrier_allocator_cvc`).
Defaults follow IEEE 802.11a: 64-point FFT, 48 data carriers, pilots at ±7 and ±21, DC empty.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DATA_CARRIERS_80211A = tuple(list(range(-26, -21)) + list(range(-20, -7)) + list(range(-6, 0))
                             + list(range(1, 7)) + list(range(8, 21)) + list(range(22, 27)))
PILOT_CARRIERS_80211A = (-21, -7, 7, 21)
PILOT_SYMBOLS_80211A = (1.0, 1.0, 1.0, -1.0)
MAX_SYMBOLS_PER_FRAME = 4095  # the stock packet header's 12-bit length field
# noise variance of a cell the receiver could not trust (erased: its symbol is handed over as 0);
# the decoders treat anything this large as no information
ERASED_NOISE_VAR = 1e4


@dataclass(frozen=True)
class OfdmLayout:
    fft_len: int = 64
    cp_len: int = 16
    data_carriers: tuple = DATA_CARRIERS_80211A
    pilot_carriers: tuple = PILOT_CARRIERS_80211A
    pilot_symbols: tuple = PILOT_SYMBOLS_80211A

    @property
    def n_data(self) -> int:
        return len(self.data_carriers)

    def carrier_of_symbol(self, k: int) -> np.ndarray:
        """Subcarrier index (signed, DC = 0) that payload symbol i of a k-symbol frame rides on."""
        return np.asarray(self.data_carriers)[np.arange(k) % self.n_data]

    def n_ofdm_symbols(self, k: int) -> int:
        return -(-k // self.n_data)


DEFAULT_LAYOUT = OfdmLayout()


def make_layout(fft_len=None, cp_len=None, occupied_carriers=None, pilot_carriers=None,
                pilot_symbols=None) -> OfdmLayout:
    """OfdmLayout from block parameters; None keeps the 802.11a-like default. Carrier lists may be
    given flat or, as gr-digital does, as a one-element list of lists."""
    def flat(x):
        if x is None:
            return None
        x = list(x)
        if x and isinstance(x[0], (list, tuple)):
            if len(x) != 1:
                raise ValueError("one carrier set per frame is supported (a single list)")
            x = list(x[0])
        return tuple(x)

    d = DEFAULT_LAYOUT
    layout = OfdmLayout(
        fft_len=int(fft_len or d.fft_len), cp_len=int(d.cp_len if cp_len is None else cp_len),
        data_carriers=flat(occupied_carriers) or d.data_carriers,
        pilot_carriers=flat(pilot_carriers) if pilot_carriers is not None else d.pilot_carriers,
        pilot_symbols=flat(pilot_symbols) if pilot_symbols is not None else d.pilot_symbols)
    if len(layout.pilot_carriers) != len(layout.pilot_symbols):
        raise ValueError("need one pilot symbol per pilot carrier")
    half = layout.fft_len // 2
    carriers = list(layout.data_carriers) + list(layout.pilot_carriers)
    if len(set(carriers)) != len(carriers) or any(not -half <= k < half or k == 0 for k in carriers):
        raise ValueError(f"carriers must be distinct, non-DC, within [-{half}, {half})")
    return layout
