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
