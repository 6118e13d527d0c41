"""The RX says when its input goes silent (a channel process or TX that died) and when it comes
back; a restarted channel process is rejoined and decoding resumes within 2 s."""
import json
import os
import time

import pytest

from diffsem_apps.radio import InputSilence

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_silence_and_return_are_logged_once_each_and_counted():
    lines = []
    s = InputSilence(lines.append, "tcp://127.0.0.1:5556")
    s.update(0.0, 0, 0)          # nothing heard yet: no silence to report
    s.update(4.9, 0, 0)
    assert lines == []
    s.update(5.0, 0, 0)          # ...but after 5 s, that nothing came, and from where
    s.update(30.0, 0, 0)         # repeated only every minute
    assert len(lines) == 1 and "nothing received from tcp://127.0.0.1:5556 in 5 s" in lines[0]
    s.update(66.0, 1000, 1)
    s.update(67.0, 2000, 2)
    for t in (68.0, 69.5, 72.0, 80.0):
        s.update(t, 2000, 2)      # silent since 67.0: said once
    s.update(81.0, 3000, 3)       # back
    assert len(lines) == 3 and "input silent" in lines[1] and "input back after 14.0 s" in lines[2]
    assert s.report() == {"input_gaps": 1, "input_silent_s": 14.0}


from support import App, free_ports  # noqa: E402 (the three-process link's helpers)


class _App(App):
    """App whose stderr lines carry the time they arrived."""

    def _pump(self):
        self.times = []
        for line in self.proc.stderr:
            self.times.append((time.monotonic(), line))
            self.err.append(line)
            self.lines.put(line)

    def wait_for(self, text, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for t, line in list(getattr(self, "times", [])):
                if text in line:
                    return t
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not seen: {''.join(self.err)[-1500:]}")


def test_a_restarted_channel_process_is_rejoined_and_decoding_resumes_within_2_s():
    zmq = pytest.importorskip("zmq")
    tx_port, rx_port, taps_port = free_ports(3)
    tx_addr, rx_addr = f"tcp://127.0.0.1:{tx_port}", f"tcp://127.0.0.1:{rx_port}"
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.subscribe(b"metrics")
    sub.connect(f"tcp://127.0.0.1:{taps_port}")
    apps = []
    decoded_at = []
    try:
        apps.append(_App("tx", "--sink", "zmq", "--address", tx_addr, "--samp-rate", "250e3", "--k", "32",
                         "--count", "8", "--loop", "--rate", "10", "--start-delay", "0", "--threads", "1"))
        channel = _App("channel", "--in", tx_addr, "--out", rx_addr, "--snr", "20", "--duration", "120")
        apps.append(channel)
        rx = _App("rx", "--source", "zmq", "--address", rx_addr, "--k", "32", "--count", "all", "--decoder",
                  "deepjscc", "--no-classifier", "--threads", "1", "--duration", "90", "--idle-timeout", "60",
                  "--taps", f"tcp://127.0.0.1:{taps_port}")
        apps.append(rx)

        def read_until(t_end):
            while time.monotonic() < t_end:
                if sub.poll(100):
                    m = json.loads(sub.recv_multipart()[1])
                    if "psnr_db" in m or ("decoded" in m and "dropped" not in m):
                        decoded_at.append(time.monotonic())
        end = time.monotonic() + 90
        while time.monotonic() < end and len(decoded_at) < 5:
            read_until(time.monotonic() + 0.5)
        assert len(decoded_at) >= 5, "".join(rx.err)[-1500:]
        channel.kill()
        rx.wait_for("input silent", 15)
        time.sleep(1.0)
        channel2 = _App("channel", "--in", tx_addr, "--out", rx_addr, "--snr", "20", "--duration", "120")
        apps.append(channel2)
        t_ready = channel2.wait_for(": ready:", 60)
        n_before = len(decoded_at)
        end = t_ready + 15
        while time.monotonic() < end and not any(t >= t_ready for t in decoded_at[n_before:]):
            read_until(time.monotonic() + 0.5)
        after = [t for t in decoded_at[n_before:] if t >= t_ready]
        assert after, "no frame decoded after the channel came back"
        assert after[0] - t_ready < 2.0, after[0] - t_ready
        rx.wait_for("input back after", 5)
    finally:
        for app in apps:
            app.kill()
        sub.close(0)
