"""run_until_drained stops the link only after every block that receives its messages has handled
them, a caller's blocks included. link_metrics accounting for every frame is not enough: GNU
Radio's stop() interrupts a message block's thread with messages still queued, so a receiver
whose thread is busy in one port's handler (a slow handler, a loaded machine) lost what waited
on the ports it had already passed (the stock-reader taps test saw 2 of 6 images that way)."""
from __future__ import annotations

import time

import pmt
from gnuradio import gr

from support import TINY_K

COUNT = 6


class BusyReceiver(gr.basic_block):
    """Counts the images on port `images`; the first message on port `busy` holds its thread for
    `delay_s`, while the link decodes."""

    def __init__(self, images, busy, delay_s):
        gr.basic_block.__init__(self, name=f"busy_receiver_{images}", in_sig=None, out_sig=None)
        self.delay_s, self.images = delay_s, 0
        for port, handler in ((images, self._image), (busy, self._busy)):
            self.message_port_register_in(pmt.intern(port))
            self.set_msg_handler(pmt.intern(port), handler)

    def _image(self, msg):
        self.images += 1

    def _busy(self, msg):
        delay, self.delay_s = self.delay_s, 0.0
        time.sleep(delay)


def test_busy_receivers_get_every_image(tiny_models):
    from gnuradio.diffsem.harness import LoopbackSim

    link = LoopbackSim(k=TINY_K, snr_db=20.0, decoders=["diffusion:1"], count=COUNT, models_dir=str(tiny_models),
                       provider="cpu", classifier_card="none")
    # A thread visits its ports in an order GNU Radio chooses; with the roles of "x" and "y" swapped
    # between the two receivers, one of them has its images on the port it visits first.
    receivers = [BusyReceiver("x", "y", 4.0), BusyReceiver("y", "x", 4.0)]
    for rcv, images, busy in zip(receivers, "xy", "yx"):
        link.msg_connect(link.src, "out", rcv, busy)  # the source's images come first, then its thread waits
        link.msg_connect(link.decoders[0], "out", rcv, images)
    assert link.run_until_drained(timeout_s=120, quiet_s=3)
    assert [r.images for r in receivers] == [COUNT, COUNT]
