"""`diffsem measure phy --only faults`: the rows docs/design/phy.md#stream-faults quotes, on a
few frames: whole frames never cut nor flagged, a 1.001 resampling flagged at 20 dB, 2x counted."""
from diffsem_apps.measure_phy import stream_faults


def test_stream_faults_rows():
    rows = stream_faults(n_frames=20)
    whole = [r for r in rows if r["fault"] == "none"]
    assert len(whole) == 18 and not any(r["cut"] or r["clock_mismatch"] for r in whole)
    cut = {(r["snr_db"], r["ofdm_symbols_lost"]): r for r in rows if r["fault"] == "cut_tail"}
    assert cut[(20.0, 1)]["found"] == cut[(20.0, 1)]["sent"]
    fast = [r for r in rows if r["fault"] == "resampled 1001/1000" and r["snr_db"] == 20.0]
    assert fast and all(r["clock_mismatch"] == r["received"] == r["sent"] for r in fast)
    assert any(r["drift_removed"] for r in fast) and all(r["err_db"] < -17 for r in fast if r["drift_removed"])
    (x2,) = [r for r in rows if r["fault"] == "oversampled 2x"]
    assert x2["wrong_rate"] == 20 and x2["received"] == 0
