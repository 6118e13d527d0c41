"""The shipped reliability mapping (models/reliability.json) on the shipped decoders, through
the channel `diffsem measure reliability` fits and tests on."""
import numpy as np
import pytest

from diffsem.runtime import reliability


@pytest.mark.parametrize("k", [32, 128])
def test_shipped_mapping_scores_a_clean_cable_like_a_good_channel(k):
    """The shipped mapping on a 40 dB link (a cable, a bench): the image is as good as at 20 dB,
    and so must the score be, within 2.5 dB and 2 dB of its 20 dB reading (extrapolated past the
    fit's 22 dB it read 16 dB for 28; held in the fit's range it reads the k = 128 DeepJSCC 2.0 dB
    low, 27.0 for 29.0, and 1.6 dB under its 20 dB reading, where the image is no better). And per
    image it ranks the images as their true PSNR does (Pearson r 0.82 / 0.86 at 20 dB, k = 32 /
    128, 200 images), which a constant or image-blind score would not."""
    from diffsem import data, models_dir
    from diffsem.experiments.schemes import load_scheme
    from diffsem.metrics import psnr
    from diffsem_apps.measure_reliability import run_channel
    if not (models_dir() / reliability.FILE_NAME).is_file():
        pytest.skip("shipped models not present")
    scheme = load_scheme("deepjscc", k, None, threads=1)
    encode = lambda x, snr: scheme.encode(x, float(snr[0]))  # noqa: E731
    model = reliability.load(f"deepjscc_k{k}", lambda: encode)
    x = data.load("test")[0][:200]
    pred = {}
    for snr in (20.0, 40.0):
        rec, nv, sym = run_channel(scheme, x, "awgn", np.full(len(x), snr, np.float32), np.zeros(len(x), np.float32), 5)
        predicted, true = model.predict(nv, rec, sym)[0], psnr(rec, x)
        pred[snr] = predicted.mean()
        assert abs(pred[snr] - true.mean()) < 2.5
        assert np.corrcoef(predicted, true)[0, 1] > 0.65
    assert pred[40.0] > pred[20.0] - 2.0
