"""diffusion_decoder publishes the receiver-side reliability score in its image PDU meta when a
reliability.json beside its card maps the model, and link_metrics forwards it."""
import json
import shutil

import numpy as np

from diffsem.runtime import reliability
from gnuradio import diffsem as blocks
from gnuradio.diffsem.harness import make_pdu, pdu_parts, run_async
from support import TINY_K as K


def _pdus(n, sigma2):
    rng = np.random.default_rng(1)
    out = []
    for seq in range(n):
        sym = ((rng.standard_normal(K) + 1j * rng.standard_normal(K)) / np.sqrt(2)).astype(np.complex64)
        out.append(make_pdu({"seq": seq, "snr_db": float(-10 * np.log10(sigma2)),
                             "noise_var": np.full(K, sigma2, np.float32)}, sym))
    return out


def test_decoder_meta_carries_predicted_psnr_only_with_a_mapping(tiny_models, tmp_path):
    folder = tmp_path / "models"
    shutil.copytree(tiny_models, folder)
    dec = blocks.diffusion_decoder(k=K, mode="deepjscc", models_dir=str(folder), provider="cpu")
    meta, _ = pdu_parts(run_async(dec, _pdus(2, 0.1))[0])
    assert "predicted_psnr_db" not in meta and "reliability" not in meta

    w = np.zeros(len(reliability.FEATURES))
    w[0], w[1] = 10.0, 2.0    # 10 dB + 2 dB per bit of information per symbol
    entry = {"features": list(reliability.FEATURES), "weights": w.tolist(), "psnr_range_db": [10.0, 20.0],
             "model_sha256": "0" * 64}
    (folder / reliability.FILE_NAME).write_text(json.dumps({"models": {f"deepjscc_k{K}": entry}}))
    dec = blocks.diffusion_decoder(k=K, mode="deepjscc", models_dir=str(folder), provider="cpu")
    meta, _ = pdu_parts(run_async(dec, _pdus(1, 0.1))[0])
    assert "predicted_psnr_db" not in meta   # fitted for another model file: no score
    card = json.loads((folder / f"deepjscc_k{K}.json").read_text())
    entry["model_sha256"] = card["sha256"]
    (folder / reliability.FILE_NAME).write_text(json.dumps({"models": {f"deepjscc_k{K}": entry}}))
    dec = blocks.diffusion_decoder(k=K, mode="deepjscc", models_dir=str(folder), provider="cpu")
    metas = {}
    for sigma2 in (0.1, 1.0):
        metas[sigma2] = pdu_parts(run_async(dec, _pdus(2, sigma2))[0])[0]
        assert metas[sigma2]["predicted_psnr_db"] == round(10 + 2 * np.log2(1 + 1 / sigma2), 2)
    assert metas[0.1]["reliability"] > metas[1.0]["reliability"]

    # the consistency features: the decoded image re-encoded by the link's encoder, against the
    # received symbols. A weight on `residual` (log10 of |s - enc(x)|^2 / noise_var) makes the score
    # the block publishes equal the one computed here from the same image and symbols.
    w[reliability.FEATURES.index("residual")] = -3.0
    entry["weights"] = w.tolist()
    (folder / reliability.FILE_NAME).write_text(json.dumps({"models": {f"deepjscc_k{K}": entry}}))
    dec = blocks.diffusion_decoder(k=K, mode="deepjscc", models_dir=str(folder), provider="cpu")
    pdu = _pdus(1, 0.1)[0]
    meta, image = pdu_parts(run_async(dec, [pdu])[0])
    _, sym = pdu_parts(pdu)
    from diffsem.runtime import OnnxModel
    enc = OnnxModel(folder / f"encoder_k{K}.json")
    again = reliability.reencode(lambda x, snr: enc(image=x, snr_db=snr)["symbols"], image)
    ours = reliability.Reliability(entry, lambda x, snr: enc(image=x, snr_db=snr)["symbols"])
    pred, _ = ours.predict(np.full((1, K), 0.1, np.float32), image.reshape(1, 1, 28, 28),
                           np.stack([sym.real, sym.imag], -1)[None])
    assert meta["predicted_psnr_db"] == round(float(pred[0]), 2)
    resid = reliability.consistency(np.stack([sym.real, sym.imag], -1)[None], again, np.full((1, K), 0.1))[0, 1]
    assert abs(meta["predicted_psnr_db"] - (10 + 2 * np.log2(11) - 3 * resid)) < 0.011


def test_a_failing_score_costs_the_score_not_the_image(tiny_models):
    dec = blocks.diffusion_decoder(k=K, mode="deepjscc", models_dir=str(tiny_models), provider="cpu")

    class Broken:
        def predict(self, *args):
            raise RuntimeError("encoder session died")
    dec.reliability = Broken()
    meta, image = pdu_parts(run_async(dec, _pdus(2, 0.1))[0])
    assert image.size == 784 and "reliability" not in meta
    assert dec.stats()["unscored"] == 2 and dec.stats()["failed"] == 0
