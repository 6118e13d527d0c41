"""flowgraphs/digital_loopback.grc: compiled with grcc, the generated code runs headless and the
link delivers what the codec fit offline promises."""

import numpy as np
from support import grcc, import_script, run_until_accounted

from diffsem.baselines import digital as dg


def test_digital_loopback_flowgraph_runs_and_matches_offline(tmp_path, test_split):
    images = test_split[0][:6]
    module = import_script(grcc("digital_loopback", tmp_path))

    n = 6
    tb = module.digital_loopback(k=128, mode="16qam-3/4", snr_db=30.0, n_images=n, rate=50.0)
    met = tb.diffsem_link_metrics_0
    acc = run_until_accounted(tb, n)
    assert acc["sent"] == n == acc["decoded"], acc
    assert tb.diffsem_digital_link_rx_0.stats()["ok"] == n
    budget = dg.bit_budget(128, dg.mode_by_name("16qam-3/4"))
    offline = np.mean([dg.fit_codec(img[0], budget.data_bytes).psnr for img in images[:n]])
    assert abs(met.summary()["avg_psnr_db"] - offline) < 0.01
