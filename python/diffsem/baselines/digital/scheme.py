"""The digital baseline as a Scheme on the library channel (numpy Viterbi), its mode calibration
and its PSNR curve.
"""
from __future__ import annotations

import math
import time

import numpy as np

from diffsem.baselines.digital.codec import CODECS, GREY, SIDE, Fit, fit_codec
from diffsem.baselines.digital.framing import (
    Received, bit_budget, bits_to_bytes, build_payload, bytes_to_bits, coded_frame_bits,
    decode_frame_llr, idle_frame_bits, parse_payload,
)
from diffsem.baselines.digital.modem import (
    MODE_THRESHOLDS_DB, MODES, Mode, bits_to_indices, constellation, demap_llr, mode_by_name,
    mode_for_snr,
)
from diffsem.metrics import psnr


def _to_numpy(x):
    try:
        import torch
        if isinstance(x, torch.Tensor):
            return x.detach().cpu().numpy(), True
    except ImportError:  # pragma: no cover
        pass
    return np.asarray(x), False


class DigitalScheme:
    """Scheme interface for the separation baseline on the library channel.

    The mode is link configuration, known to both ends: a fixed ``mode``, or link adaptation
    from ``link_snr_db`` (set it per operating point: ``scheme.link_snr_db = snr``; the sweep
    does) and, when that is None, from the snr_db given to encode/decode (the same value must
    reach both, as evaluate.transmit_and_decode's decode call does). Counters of the last
    decode are in ``last_stats`` (frames, ok, crc_fail, no_image, bad_payload); the codec fits
    of the last encode (what an error-free frame shows) in ``last_fits``.
    """

    name = "digital"
    steps = None  # no sampler: not a grid coordinate
    link = "digital_link"  # on the radio: frames through digital_link_tx/rx in mode_for(snr)

    def __init__(self, k: int, mode: str | None = None, codecs=CODECS, thresholds: dict | None = None,
                 link_snr_db: float | None = None, margin_db: float = 0.0):
        if k < 1:
            raise ValueError("digital baseline: k must be >= 1")
        self.k = k
        self.fixed_mode = mode_by_name(mode) if mode else None
        self.codecs = tuple(codecs)
        self.thresholds = thresholds or MODE_THRESHOLDS_DB
        self.link_snr_db = link_snr_db
        self.margin_db = float(margin_db)
        self.last_stats: dict = {}
        self.last_fits: list[Fit] = []
        self._point_stats: dict = {}

    def at_snr(self, snr_db: float) -> None:
        """An operating point: link adaptation for this SNR, frame counters from zero."""
        self.link_snr_db = float(snr_db)
        self._point_stats = {}

    def row_fields(self) -> dict:
        """The mode of the operating point and the fraction of its frames decoded (CRC ok)."""
        out = {}
        if self.fixed_mode is not None or self.link_snr_db is not None:
            out["mode"] = self.mode_for(self.link_snr_db).name
        if self._point_stats.get("frames"):
            out["delivered"] = round(self._point_stats.get("ok", 0) / self._point_stats["frames"], 4)
        return out

    def __repr__(self):
        how = self.fixed_mode.name if self.fixed_mode else f"adaptive@{self.link_snr_db}"
        return f"DigitalScheme(k={self.k}, mode={how}, codecs={self.codecs})"

    def mode_for(self, snr_db) -> Mode:
        if self.fixed_mode is not None:
            return self.fixed_mode
        if self.link_snr_db is not None:
            snr_db = self.link_snr_db
        if snr_db is None:
            raise ValueError("digital baseline: link adaptation needs the SNR: set link_snr_db, "
                             "pass snr_db, or give a fixed mode")
        return mode_for_snr(float(snr_db), self.thresholds, self.margin_db) or MODES[0]

    def _modes(self, snr_db, batch: int) -> list[Mode]:
        if snr_db is None or self.fixed_mode is not None or self.link_snr_db is not None:
            return [self.mode_for(None if snr_db is None else np.ravel(_to_numpy(snr_db)[0])[0])] * batch
        snr, _ = _to_numpy(snr_db)
        snr = np.broadcast_to(np.asarray(snr, np.float64).reshape(-1), (batch,))
        return [self.mode_for(s) for s in snr]

    @staticmethod
    def _seqs(seq, batch: int) -> np.ndarray:
        """Sequence numbers of the frames (they pick the scrambler state): the batch index by default."""
        if seq is None:
            return np.arange(batch)
        seq = np.broadcast_to(np.asarray(_to_numpy(seq)[0], np.int64).reshape(-1), (batch,))
        return seq

    def encode(self, images, snr_db=None, seq=None):
        """Images -> [B, k, 2] symbols. seq: the frames' sequence numbers (default 0..B-1), which
        choose each frame's scrambler state; decode must be given the same."""
        x, as_torch = _to_numpy(images)
        x = np.asarray(x, np.float32).reshape(len(x), SIDE, SIDE)
        out = np.empty((len(x), self.k, 2), np.float32)
        seqs = self._seqs(seq, len(x))
        self.last_fits = []
        for i, (img, mode) in enumerate(zip(x, self._modes(snr_db, len(x)))):
            budget = bit_budget(self.k, mode)
            if not budget.carries_frame:  # nothing to send: an idle frame goes out, the RX shows grey
                self.last_fits.append(fit_codec(img, -1, ()))
                bits = idle_frame_bits(budget, seqs[i])
            else:
                fit = fit_codec(img, budget.data_bytes, self.codecs)
                self.last_fits.append(fit)
                bits = coded_frame_bits(bytes_to_bits(build_payload(fit, budget)), budget, seqs[i])
            sym = constellation(mode.bits_per_symbol)[bits_to_indices(bits, mode.bits_per_symbol)]
            out[i, :, 0], out[i, :, 1] = sym.real, sym.imag
        if as_torch:
            import torch
            return torch.from_numpy(out)
        return out

    def decode(self, symbols, snr_db=None, noise_var=None, rng=None, seq=None):
        y, as_torch = _to_numpy(symbols)
        y = np.asarray(y, np.float64)
        b = len(y)
        seqs = self._seqs(seq, b)
        if noise_var is None:
            noise_var = np.ones((b, self.k)) if snr_db is None else \
                np.repeat(10 ** (-np.asarray(_to_numpy(snr_db)[0], np.float64).reshape(-1, 1) / 10), self.k, 1)
        nv = np.broadcast_to(np.asarray(_to_numpy(noise_var)[0], np.float64).reshape(b, -1), (b, self.k))
        cplx = y[..., 0] + 1j * y[..., 1]
        modes = self._modes(snr_db, b)
        images = np.empty((b, 1, SIDE, SIDE), np.float32)
        stats = {"frames": b, "ok": 0, "crc_fail": 0, "no_image": 0, "bad_payload": 0}
        for mode in set(modes):  # decode frames that share a mode together (vectorised Viterbi)
            rows = [i for i, m in enumerate(modes) if m == mode]
            budget = bit_budget(self.k, mode)
            if not budget.carries_frame:
                stats["no_image"] += len(rows)
                images[rows] = GREY
                continue
            finite = np.isfinite(cplx[rows]).all(axis=1) & np.isfinite(nv[rows]).all(axis=1)
            llr = demap_llr(np.nan_to_num(cplx[rows]), np.nan_to_num(nv[rows], nan=1e6), mode.bits_per_symbol)
            info = decode_frame_llr(llr, budget, seqs[rows]) if budget.info_bits else \
                np.zeros((len(rows), 0), np.uint8)
            for j, i in enumerate(rows):
                rec = parse_payload(bits_to_bytes(info[j]), budget) if finite[j] else \
                    Received("bad_payload", np.full((SIDE, SIDE), GREY, np.float32))
                stats[rec.status] += 1
                images[i, 0] = rec.image
        self.last_stats = stats
        for key, value in stats.items():
            self._point_stats[key] = self._point_stats.get(key, 0) + value
        if as_torch:
            import torch
            return torch.from_numpy(images)
        return images


def calibrate(k: int = 128, frames: int = 2000, seed: int = 0, target_fer: float = 0.01,
              step_db: float = 0.5) -> dict:
    """Lowest SNR (on a step_db grid) where random payloads of each mode decode with FER <= target."""
    rng = np.random.default_rng(seed)
    out = {}
    for mode in MODES:
        budget = bit_budget(k, mode)
        if not budget.carries_frame:
            continue
        snr = MODE_THRESHOLDS_DB[mode.name] - 3.0  # start below the table's value: fewer steps
        while True:
            info = rng.integers(0, 2, (frames, budget.info_bits), dtype=np.uint8)
            bits = coded_frame_bits(info, budget)
            sym = constellation(mode.bits_per_symbol)[bits_to_indices(bits, mode.bits_per_symbol)]
            nv = 10 ** (-snr / 10)
            noise = rng.normal(0, math.sqrt(nv / 2), sym.shape + (2,))
            rx = sym + noise[..., 0] + 1j * noise[..., 1]
            dec = decode_frame_llr(demap_llr(rx, np.full(rx.shape, nv), mode.bits_per_symbol), budget)
            fer = float(np.mean((dec != info).any(axis=1)))
            if fer <= target_fer:
                out[mode.name] = snr
                break
            snr += step_db
    return out


def run_curve(k: int, snrs, n: int, seed: int, channel: str = "awgn", mode: str | None = None,
              margin_db: float = 0.0):
    """PSNR vs SNR of the digital link on the library channel: one JSON-able dict per SNR."""
    import torch
    from diffsem import data
    from diffsem.channel import transmit
    from diffsem.baselines import classifier_accuracy
    images, labels = data.load("test")
    images, labels = images[:n], labels[:n]
    scheme = DigitalScheme(k, mode=mode, margin_db=margin_db)
    for snr in snrs:
        t0 = time.time()
        scheme.link_snr_db = float(snr)
        tx = scheme.encode(images)
        fits = scheme.last_fits
        g = torch.Generator().manual_seed(seed)
        s_hat, nv = transmit(torch.from_numpy(tx), float(snr), channel, generator=g)
        rec = scheme.decode(s_hat.numpy(), np.full(len(images), float(snr)), nv.numpy())
        p = psnr(rec, images)
        m = scheme.mode_for(float(snr))
        budget = bit_budget(k, m)
        codecs = [f.codec for f in fits if f.codec]
        yield {"scheme": "digital", "k": k, "channel": channel, "snr_db": float(snr), "mode": m.name,
               "codec_bytes": budget.data_bytes, "psnr": round(float(np.mean(p)), 3),
               "accuracy": classifier_accuracy(rec, labels),
               "psnr_if_delivered": round(float(np.mean([f.psnr for f in fits])), 3),
               "fit_rate": round(len(codecs) / len(fits), 4),
               "codecs": {c: codecs.count(c) for c in sorted(set(codecs))},
               "mean_quality": round(float(np.mean([f.quality for f in fits if f.codec])), 1) if codecs else None,
               **{key: v for key, v in scheme.last_stats.items()}, "n": len(images), "seed": seed,
               "seconds": round(time.time() - t0, 2)}


def frame_power(k: int, n: int):
    """Power per complex channel use of DigitalScheme frames (every symbol of the k: fields,
    codec data, padding, CRC, tail, coded padding; idle frames where the mode has no room) over
    the first n test images, per mode: one dict per mode."""
    from diffsem import data
    images, _ = data.load("test")
    images = images[:n]
    for mode in MODES:
        sym = DigitalScheme(k, mode=mode.name).encode(images).astype(np.float64)
        power = (sym ** 2).sum(-1).mean(1)
        yield {"k": k, "mode": mode.name, "carries_frame": bit_budget(k, mode).carries_frame, "n": len(images),
               "power_mean": round(float(power.mean()), 4), "power_frame_std": round(float(power.std()), 4),
               "power_min": round(float(power.min()), 3), "power_max": round(float(power.max()), 3)}
