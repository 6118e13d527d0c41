"""`diffsem measure phy --only interop`: both controls receive every burst, both preambles are
found by the other receiver, and no header crosses over (the state docs/design/phy.md's
interop table reports; a change to the on-air header format must update that table)."""
from __future__ import annotations

import json

from diffsem_apps import cli

N = 4


def test_interop_counts(capsys):
    assert cli.main(["measure", "phy", "--only", "interop", "--frames", str(N), "--snr-db", "30"]) == 0
    (line,) = [l for l in capsys.readouterr().out.splitlines() if l.startswith("{")]
    r = json.loads(line)
    assert r["control_ours_on_ours"]["recorded"]["frames"] == N
    assert r["control_stock_on_stock"]["headers_parsed"] == N == r["control_stock_on_stock"]["packets_crc32_ok"]
    # the preambles are stock: each receiver detects every burst of the other TX ...
    assert r["stock_rx_on_ours"]["headers_tried"] == N
    assert r["ours_rx_on_stock"]["header_crc_fail"] == N
    # ... and parses none of its headers (docs/design/phy.md, "On air")
    assert r["stock_rx_on_ours"]["headers_parsed"] == 0 and r["ours_rx_on_stock"]["frames"] == 0
