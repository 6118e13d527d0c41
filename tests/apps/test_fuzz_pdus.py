"""A short seeded run of `diffsem fuzz`: hostile PDUs into every block with a message input kill
none of them, and each still handles a good PDU right afterwards."""
import json
import subprocess
import sys

import numpy as np
import pmt
import pytest

from diffsem.link.pdu import PduError, validate_meta, validate_notice
from gnuradio.diffsem.harness import pdu_parts

PDUS_PER_BLOCK = 300


def test_every_block_survives_hostile_pdus_and_then_decodes_a_good_one():
    """`diffsem fuzz` as a program: 300 seeded hostile PDUs per block, then a good one each."""
    out = subprocess.run([sys.executable, "-m", "diffsem_apps.cli", "fuzz", "--pdus", str(PDUS_PER_BLOCK),
                          "--seed", "100", "--steps", "1"], capture_output=True, text=True, timeout=600)
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    total = rows.pop()["total"]
    assert len(rows) == 12 and total["blocks"] == 12, out.stdout[-2000:] + out.stderr[-2000:]
    bad = [(r["block"], r["deaths"], r["stalls"]) for r in rows if r["deaths"] or r["stalls"]]
    assert not bad and out.returncode == 0, bad
    assert total["pdus"] >= 12 * PDUS_PER_BLOCK
    for r in rows:  # no handler let an unexpected exception through: only named refusals
        guarded = r["counters"].get("guarded") or r["counters"].get("rejected") or {}
        if isinstance(guarded, dict):
            assert not [k for k in guarded if k.startswith("handler_error")], (r["block"], guarded)


@pytest.mark.parametrize("kind", ["s8", "s64", "u64", "u16", "f64", "c64"])
def test_every_uniform_vector_type_converts(kind):
    dtype = {"s8": np.int8, "s64": np.int64, "u64": np.uint64, "u16": np.uint16, "f64": np.float64,
             "c64": np.complex128}[kind]
    vec = getattr(pmt, f"init_{kind}vector")(3, np.arange(3).astype(dtype))
    meta = pmt.dict_add(pmt.make_dict(), pmt.intern("x"), vec)
    parsed, values = pdu_parts(pmt.cons(meta, vec))
    assert values.dtype == dtype and parsed["x"].dtype == dtype


@pytest.mark.parametrize("meta,kind", [
    ({"seq": 2 ** 63 + 1}, "meta_int_range"), ({"seq": -3}, "meta_seq"), ({"seq": 1.5}, "meta_seq"),
    ({"label": "cat"}, "meta_label"), ({"noise_var": (0.1, 0.2)}, "meta_noise_var"),
    ({"snr_db": "high"}, "meta_snr"), ({3: 1}, "meta_key"), ([1, 2], "meta_not_dict")])
def test_plainly_wrong_metadata_is_refused_by_kind(meta, kind):
    with pytest.raises(PduError) as err:
        validate_meta(meta)
    assert err.value.kind == kind


def test_drop_notices_with_wrong_types_are_refused():
    for notice in ({"seq": np.arange(3)}, {"seq": 2 ** 64 - 1}, {"block": np.zeros(2)}, {"reason": 3}, [1]):
        with pytest.raises(PduError):
            validate_notice(notice)
    assert validate_notice({"seq": -1, "reason": "queue_full", "block": "x"}) == (None, "queue_full", "x")


def test_a_handler_that_raises_is_counted_and_logged_once_per_kind():
    from diffsem.link.pdu import Rejections
    lines = []
    rej = Rejections("blk", lines.append, interval=3600)

    def handler(msg):
        raise KeyError(msg)
    for i in range(1000):
        assert rej.guard(handler, "in", i) is None
        rej.guard(lambda m: (_ for _ in ()).throw(PduError("bad", "payload_type")), "in", i)
    assert rej.snapshot() == {"handler_error_KeyError": 1000, "rejected_payload_type": 1000}
    assert len(lines) == 2
