"""`diffsem measure posterior` on a linear Gaussian codec whose posterior is known: an exact
posterior sampler reads as one (a draw's residual 1, the mean's and the MMSE decoder's lower, the
spread ratio 1/(1 + 1/S)), a narrowed one does not; and the command runs on the shipped models."""
import json

import numpy as np

from diffsem.experiments.schemes import Scheme
from diffsem_apps import measure_posterior

K = 16


def gaussian_codec(temperature=1.0):
    """Pixels ~ N(0, 1/2); the first 2K pixels are the K unit-power symbols. The student draws
    from the exact posterior (the other pixels from the prior), the DeepJSCC stand-in returns the
    posterior mean (0 off the symbols)."""
    def encode(images, snr):
        return images.reshape(len(images), -1)[:, :2 * K].reshape(-1, K, 2)

    def posterior(symbols, noise_var, noise):
        nv = noise_var[..., None].astype(np.float64)
        out = np.sqrt(0.5) * noise.reshape(len(symbols), -1).astype(np.float64)
        mean, var = symbols / (1 + nv), nv / (1 + nv) / 2
        out[:, :2 * K] = (mean + np.sqrt(var) * noise.reshape(len(symbols), -1)[:, :2 * K].reshape(-1, K, 2)
                          ).reshape(len(symbols), -1)
        return out.reshape(-1, 1, 28, 28).astype(np.float32)

    student = Scheme("student", K, 1, encode, lambda s, snr, nv, z: posterior(s, nv, z), temperature=temperature)
    mmse = Scheme("deepjscc", K, None, encode, lambda s, snr, nv, z: posterior(s, nv, 0 * z))
    return student, mmse


def test_an_exact_posterior_sampler_reads_as_one_and_a_narrowed_one_does_not():
    images = np.random.default_rng(5).normal(0, np.sqrt(0.5), (500, 1, 28, 28)).astype(np.float32)
    student, mmse = gaussian_codec()
    nv = 10 ** -0.5                                                   # 5 dB
    exact, narrow = measure_posterior.point_rows(student, mmse, images, 5.0, [(1.0, "full"), (0.3, "card")])
    assert abs(exact["residual_original_mean"] - 1) < 0.03
    assert abs(exact["residual_sample_mean"] - 1) < 0.05
    assert exact["residual_mean_mean"] < exact["residual_sample_mean"] - 0.5
    assert abs(exact["residual_deepjscc_mean"] - nv / (1 + nv)) < 0.03            # N/(P+N)
    assert abs(exact["residual_mean_mean"] - (nv + 1 / 8) / (1 + nv)) < 0.03       # + posterior variance / S
    assert abs(exact["ratio"] - exact["posterior_ratio"]) < 0.05
    assert measure_posterior.posterior_like(exact)
    assert narrow["ratio"] < 0.3 and narrow["residual_sample_mean"] < 0.8
    assert not measure_posterior.posterior_like(narrow)


def test_posterior_command_on_the_shipped_models(tmp_path, capsys):
    page = tmp_path / "posterior.md"
    argv = ["--k", "32", "--snr", "10", "--steps", "1", "--n", "8", "--samples", "2", "--markdown", str(page)]
    assert measure_posterior.main(argv) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [r["temperature_from"] for r in rows][0] == "card" and rows[-1]["temperature"] == 1.0
    assert all(r["n"] == 8 and r["samples"] == 2 and abs(r["residual_original_mean"] - 1) < 0.3 for r in rows)
    assert "diffsem measure posterior --k 32" in page.read_text().splitlines()[2]
