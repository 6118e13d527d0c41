"""diffsem TX / RX / channel apps: the semantic image link as separate programs with
interchangeable endpoints (in the spirit of gr-dvbs2rx's dvbs2-tx / dvbs2-rx).

    diffsem tx      --sink   sim|zmq|file|uhd|soapy ...
    diffsem rx      --source sim|zmq|file|uhd|soapy ... [--record REC]
    diffsem channel --in tcp://127.0.0.1:5555 --out tcp://127.0.0.1:5556 --snr 15

TX:  image_source -> semantic_encoder -> ofdm_analog_tx -> sink
     sim:   channel_sim -> (SigMF file with --output, else discarded): a local check
     zmq:   continuous stream (bursts, zeros between them) at --samp-rate -> ZMQ PUB (binds)
     file:  the bursts as a SigMF recording (--output), no gaps filled
     uhd / soapy: continuous stream to a USRP / a SoapySDR device (HackRF by default)
RX:  source -> ofdm_analog_rx -> diffusion_decoder -> link_metrics (+ image folder, ZMQ taps)
     sim:   an in-process TX + channel_sim (what `tx --sink sim` sends)
     zmq:   ZMQ SUB (connects; reconnects by itself, waits for samples)
     file:  SigMF replay, as fast as possible or at the recorded rate (--throttle)
     uhd / soapy: an SDR
     --record REC: the RX input IQ as SigMF, one annotation per detected frame.
The channel process (ZMQ SUB -> channel_sim -> ZMQ PUB) makes the three-process radio.

The RX knows what was sent when told the same images as the TX (--first/--count of the test
split): it then keeps the frame accounting (sent = decoded + unmatched + crc_dropped +
queue_dropped + bad_input + failed + lost) and the PSNR, and exits once every frame is accounted for or the link
has been quiet for --idle-timeout seconds. Each app prints one JSON line (its report) on stdout.

The TX never drops an image it was given: a finite source waits for the encoder and the TX
(back-pressure), and the app exits only once the sink has taken the last burst and --linger s of
zeros after it. Its report's "images" counts read, encoded, on_air, dropped (by reason) and
in_flight (read = on_air + dropped + in_flight; in_flight is 0 unless stopped by a signal). A
--loop beacon keeps its pace instead: what the queues drop is counted there.
"""
from __future__ import annotations

import json
import signal
import sys
import threading
import time

from gnuradio import blocks, gr, pdu

from diffsem import args as checks
from diffsem.phy import LEN_TAG

from .endpoints import (EndpointError, burst_filler, read_meta, sigmf_paths, sigmf_recorder, sigmf_replay, soapy_endpoint,
                        uhd_endpoint, zmq_sample_source)

DEFAULT_TX_ADDRESS = "tcp://127.0.0.1:5555"   # TX PUB (the channel, or an RX, subscribes)
DEFAULT_RX_ADDRESS = "tcp://127.0.0.1:5556"   # channel PUB (the RX subscribes)
DEFAULT_FREQ = 2.45e9                          # 2.4 GHz ISM bench test
DEFAULT_RATE = 1e6


def _log(app: str, text: str):
    print(f"diffsem-{app}: {text}", file=sys.stderr, flush=True)


# --- shared building blocks -------------------------------------------------------------------------

class _TxChain:
    """image_source -> semantic_encoder -> ofdm_analog_tx, added to a top block.

    A finite source waits for the chain (back-pressure, image_source.set_flow_control): at most
    FLOW_WINDOW images are between the source and the end of the chain (the burst filler's
    output for stream sinks, the TX's output otherwise), well under the encoder's and the
    filler's queues, so no image is dropped for room. `accounting()` says where every image is."""

    FLOW_WINDOW = 16

    def __init__(self, tb, args):
        from gnuradio import diffsem
        if args.loop and args.rate <= 0:  # an unpaced loop would only fill the encoder's drop counter
            args.rate = 10.0
            _log("tx", "--loop without --rate: sending 10 images/s")
        self.src = diffsem.image_source(args.images, "test", args.first, args.count, args.loop, args.rate,
                                        args.start_delay)
        self.enc = diffsem.semantic_encoder(args.k, "", args.models_dir, args.provider, args.snr, 64,
                                            args.max_batch, "oldest", args.threads)
        self.tx = diffsem.ofdm_analog_tx()
        self.filler = None
        tb.msg_connect(self.src, "out", self.enc, "in")
        tb.msg_connect(self.enc, "out", self.tx, "in")
        self.out = self.tx
        self.samples_per_frame = self.tx.burst_length(args.k)
        self.src.set_flow_control(self._in_flight, self.FLOW_WINDOW)

    def bursts_to_stream(self, tb, samp_rate):
        """A continuous stream at samp_rate: bursts with zeros between them (for ZMQ / SDR sinks)."""
        to_pdu = pdu.tagged_stream_to_pdu(gr.types.complex_t, LEN_TAG)
        self.filler = burst_filler()
        tb.connect(self.tx, to_pdu)
        tb.msg_connect(to_pdu, "pdus", self.filler, "pdus")
        return self.filler

    def dropped(self) -> dict:
        """Images that will never be on air, by reason (all zero for a finite source)."""
        enc, tx = self.enc.stats(), self.tx.stats()
        out = {"encoder_queue_full": enc["dropped_queue"], "encoder_failed": enc["failed"],
               "encoder_bad_input": enc["bad_input"],
               "tx_refused": sum(v for key, v in tx.items() if key.startswith("rejected_"))}
        if self.filler is not None:
            out["filler_queue_full"] = self.filler.stats()["dropped"]
        return out

    def _through(self) -> int:
        """Bursts past the end of the chain (out of the filler's queue, or out of the TX)."""
        return self.filler.stats()["bursts_out"] if self.filler is not None else self.tx.emitted()[0]

    def _in_flight(self) -> int:
        return self.src.sent - self._through() - sum(self.dropped().values())

    def accounting(self, on_air: int) -> dict:
        """read (by the source), encoded, on_air (left the sink whole), dropped (by reason);
        read == on_air + sum(dropped) + in_flight."""
        dropped = self.dropped()
        return {"read": self.src.sent, "encoded": self.enc.stats()["processed"], "on_air": on_air,
                "dropped": sum(dropped.values()), "dropped_by_reason": dropped,
                "in_flight": self.src.sent - on_air - sum(dropped.values())}


def zmq_pub(address):
    """A ZMQ PUB sample sink bound at `address`; EndpointError when the address is taken."""
    from gnuradio import zeromq
    try:
        return zeromq.pub_sink(gr.sizeof_gr_complex, 1, address, 100, False, -1)
    except RuntimeError as exc:
        raise EndpointError(f"cannot publish samples at {address} ({exc}): is another diffsem TX or channel "
                            f"running there?") from None


def zmq_sub(address):
    """A ZMQ SUB sample source connected to `address` (it reconnects until a publisher binds):
    endpoints.zmq_sample_source, which survives a malformed message (counted) where gr-zeromq's
    sub_source stops for good."""
    return zmq_sample_source(address)


def _channel(args):
    from gnuradio import diffsem
    return diffsem.channel_sim(args.snr, args.channel, args.cfo, args.timing_offset, args.seed)


def _recording_info(args, role: str) -> dict:
    from diffsem.phy.ofdm import OfdmLayout
    lay = OfdmLayout()
    n_active = len(lay.data_carriers) + len(lay.pilot_carriers)
    return {"hw": args.hw or {"sim": "simulated channel (channel_sim)", "zmq": "ZMQ sample stream",
                              "file": "SigMF replay", "uhd": f"USRP ({args.device_args or 'first found'})",
                              "soapy": f"SoapySDR ({args.device_args or 'driver=hackrf'})"}.get(args.endpoint, "?"),
            "author": args.author, "description": args.description or f"gr-diffsem {role} IQ, k={args.k}",
            "gains": {"gain_db": args.gain}, "occupied_fraction": (n_active + 1) / lay.fft_len,
            "settings": {"k": args.k, "snr_db": args.snr, "channel": getattr(args, "channel", None),
                         "seed": args.seed, "first": args.first, "count": args.count}}


def _frame_samples(n_symbols: int) -> int:
    """Samples of one frame on air without padding (preambles, header copies, payload)."""
    from diffsem.phy.ofdm import OfdmLayout
    lay = OfdmLayout()
    return (2 + 4 + lay.n_ofdm_symbols(max(1, n_symbols))) * (lay.fft_len + lay.cp_len)


# --- TX ------------------------------------------------------------------------------------------------

class TxApp(gr.top_block):
    def __init__(self, args):
        gr.top_block.__init__(self, "diffsem-tx")
        self.args = args
        self.chain = _TxChain(self, args)
        self.recorder = None
        sink = args.endpoint
        if sink == "sim":
            self.chan = _channel(args)
            self.connect(self.chain.out, self.chan)
            self._file_or_null(self.chan, "TX through the simulated channel")
        elif sink == "file":
            if not args.output:
                raise EndpointError("--sink file needs --output PATH (the SigMF recording to write)")
            self._file_or_null(self.chain.out, "TX bursts")
        else:
            stream = self.chain.bursts_to_stream(self, args.samp_rate)
            if sink == "zmq":
                throttle = blocks.throttle(gr.sizeof_gr_complex, args.samp_rate)
                pub = zmq_pub(args.address)
                self.connect(stream, throttle, pub)
                self.sink_block = pub
            else:
                make = uhd_endpoint if sink == "uhd" else soapy_endpoint
                dev = make("tx", args.samp_rate, args.freq, args.gain, args.device_args, args.antenna)
                self.connect(stream, blocks.multiply_const_cc(args.amplitude), dev)
                self.sink_block = dev
        self.sink_name = sink

    def _file_or_null(self, block, what):
        if self.args.output:
            self.recorder = sigmf_recorder(self.args.output, self.args.samp_rate, self.args.freq,
                                           _recording_info(self.args, what))
            self.connect(block, self.recorder)
            self.sink_block = self.recorder
        else:
            self.sink_block = blocks.null_sink(gr.sizeof_gr_complex)
            self.connect(block, self.sink_block)
        return block

    def _sink_read(self) -> int:
        """Samples the sink (the last block) has taken."""
        return int(self.sink_block.nitems_read(0))

    def _on_air(self) -> int:
        filler = self.chain.filler
        if filler is not None:
            return filler.on_air(self._sink_read())
        bursts, samples = self.chain.tx.emitted()
        return bursts if self._sink_read() >= samples else max(bursts - 1, 0)

    def run_app(self, stop_event) -> dict:
        """Send the images; return once every image is on air or counted as dropped and the sink
        has taken the last burst and --linger s of zeros after it, or on a signal."""
        self.start()
        _log("tx", f"ready: sink {self.sink_name}, {self.args.count} images, k={self.args.k}")
        src, chain = self.chain.src, self.chain
        filler = chain.filler
        linger = int(self.args.linger * self.args.samp_rate)
        t_end = None
        while not stop_event.is_set():
            if src.finished() and not self.args.loop and chain.accounting(self._on_air())["in_flight"] == 0:
                if filler is not None:  # zeros after the last burst let the link (ZMQ, an SDR) flush it
                    if self._sink_read() >= filler.last_end + linger:
                        break
                else:
                    t_end = t_end or time.monotonic() + self.args.linger
                    if time.monotonic() >= t_end:
                        break
            stop_event.wait(0.02)
        self.stop()
        self.wait()
        if self.recorder is not None:
            self.recorder.close()
        acc = chain.accounting(self._on_air())
        rep = {"app": "tx", "sink": self.sink_name, "sent": src.sent, "frames": chain.tx.stats()["frames"],
               "images": acc, "waited_s": round(src.waited_s, 3), "tx": chain.tx.stats(),
               "samples_per_frame": self.chain.samples_per_frame}
        if filler is not None:
            rep["filler"] = filler.stats()
        if self.recorder is not None:
            rep["recording"] = self.recorder.meta_path
        return rep


# --- channel -------------------------------------------------------------------------------------------

class ChannelApp(gr.top_block):
    """ZMQ SUB (the TX) -> channel_sim -> ZMQ PUB (the RX). The SUB reconnects by itself, so the
    TX and the RX may start before or after it."""

    def __init__(self, args):
        gr.top_block.__init__(self, "diffsem-channel")
        self.args = args
        if args.input == args.output:
            raise EndpointError(f"--in and --out are both {args.input}: the channel would subscribe to itself")
        self.sub = zmq_sub(args.input)
        self.chan = _channel(args)
        self.pub = zmq_pub(args.output)
        self.counter = blocks.null_sink(gr.sizeof_gr_complex)
        self.connect(self.sub, self.chan, self.pub)
        self.connect(self.chan, self.counter)

    def run_app(self, stop_event) -> dict:
        self.start()
        _log("channel", f"ready: {self.args.input} -> {self.args.channel} {self.args.snr} dB -> {self.args.output}")
        t0 = time.monotonic()
        silence = InputSilence(lambda text: _log("channel", text), self.args.input)
        while not stop_event.is_set() and not (self.args.duration and time.monotonic() - t0 > self.args.duration):
            silence.update(time.monotonic(), int(self.counter.nitems_read(0)), None)
            stop_event.wait(0.1)
        self.stop()
        self.wait()
        return {"app": "channel", "samples": int(self.counter.nitems_read(0)), "snr_db": self.args.snr,
                "channel": self.args.channel, "input": self.sub.stats(), **silence.report()}


# --- RX ------------------------------------------------------------------------------------------------

class RxApp(gr.top_block):
    def __init__(self, args):
        gr.top_block.__init__(self, "diffsem-rx")
        from gnuradio import diffsem
        from gnuradio.diffsem.harness import parse_decoders
        self.args = args
        self._settle_args(args)
        self.replay = self.zmq_in = None
        self.tx_chain = None
        source = args.endpoint
        if source == "sim":
            self.tx_chain = _TxChain(self, args)
            src = _channel(args)
            self.connect(self.tx_chain.out, src)
        elif source == "zmq":
            src = self.zmq_in = zmq_sub(args.address)
        elif source == "file":
            if not args.input:
                raise EndpointError("--source file needs --input PATH (the SigMF recording to replay)")
            self.replay = sigmf_replay(args.input)
            args.freq = self.replay.info()["center_freq"]
            src = self.replay
            if args.throttle:
                throttle = blocks.throttle(gr.sizeof_gr_complex, args.samp_rate)
                self.connect(src, throttle)
                src = throttle
        else:
            make = uhd_endpoint if source == "uhd" else soapy_endpoint
            src = make("rx", args.samp_rate, args.freq, args.gain, args.device_args, args.antenna)
            if source == "soapy":  # a HackRF's LO leakage at DC multiplies false triggers (runbook: DC offset)
                from gnuradio import filter as grfilter
                dc = grfilter.dc_blocker_cc(128, True)
                self.connect(src, dc)
                src = dc
        # every frame of a link has k symbols: a header whose CRC fails is salvaged (counted apart)
        self.rx = diffsem.ofdm_analog_rx(samp_rate=args.samp_rate, fixed_k=0 if args.no_salvage else args.k)
        self.connect(src, self.rx)
        self.samples = blocks.null_sink(gr.sizeof_gr_complex)
        self.connect(src, self.samples)

        mode, steps = parse_decoders([args.decoder])[0]
        self.dec = diffsem.diffusion_decoder(args.k, mode, steps or 2, "", args.models_dir, args.provider, args.seed,
                                             args.max_queue, args.max_batch, "oldest", args.threads,
                                             encoder_snr_db=args.snr)
        self.metrics = diffsem.link_metrics("none" if args.no_classifier else "", args.models_dir, False, self.rx,
                                            self.dec.label)
        self.msg_connect(self.rx, "out", self.dec, "in")
        self.msg_connect(self.dec, "out", self.metrics, "in")
        self.msg_connect(self.dec, "drops", self.metrics, "drops")
        # references: the same images the TX sends (same split/first/count), all at once
        self.refs = None
        if args.count > 0:
            self.refs = (self.tx_chain.src if self.tx_chain is not None else
                         diffsem.image_source(args.images, "test", args.first, args.count, False, 0.0, 0.0))
            self.msg_connect(self.refs, "out", self.metrics, "ref")
            if self.tx_chain is not None:
                self.msg_connect(self.tx_chain.enc, "drops", self.metrics, "drops")
        self.recorder = None
        if args.record:
            self.recorder = sigmf_recorder(args.record, args.samp_rate, args.freq, _recording_info(args, "RX input"),
                                           _frame_samples, int(args.record_seconds * args.samp_rate))
            self.connect(src, self.recorder)
            self.msg_connect(self.rx, "out", self.recorder, "frames")
        if args.image_folder:
            self.sink = diffsem.image_sink(args.image_folder, "rx", True, 16, 64, 8, 1, args.image_limit)
            self.msg_connect(self.dec, "out", self.sink, "in")
        taps_pmt = getattr(args, "taps_pmt", "")
        if args.taps or taps_pmt:
            self.taps = diffsem.zmq_taps(args.taps, 32, 1, taps_pmt)
            self.msg_connect(self.rx, "out", self.taps, "constellation")
            self.msg_connect(self.dec, "out", self.taps, "image")
            self.msg_connect(self.dec, "state", self.taps, "state")
            self.msg_connect(self.metrics, "metrics", self.taps, "metrics")
            if self.refs is not None:
                self.msg_connect(self.refs, "out", self.taps, "ref")  # labels for the image tap

    def _settled(self) -> bool:
        acc = self.metrics.accounting()
        return (self.refs is not None and self.refs.finished() and acc["sent"] == self.args.count
                and acc["missing"] == 0 and self.metrics.wait_idle(0))

    def _samples_in(self) -> int:
        return self.replay.played() if self.replay is not None else int(self.samples.nitems_read(0))

    @staticmethod
    def _settle_args(args):
        """--k, --first, --count and --samp-rate: as given, else a replayed recording's (its
        sample rate and the TX's settings, so its frames are matched to the images it sent), else
        RX_DEFAULTS. A value given that differs from the recording's is kept, with a warning."""
        recorded = {}
        if getattr(args, "endpoint", None) == "file" and args.input:
            try:
                meta = read_meta(sigmf_paths(args.input)[1])
            except Exception:  # noqa: BLE001 - sigmf_replay names what is wrong with the file
                meta = {}
            glob = meta.get("global", {}) if isinstance(meta, dict) else {}
            settings = glob.get("diffsem:settings") if isinstance(glob, dict) else None
            recorded = {k: v for k, v in (settings or {}).items() if k in ("k", "first", "count")
                        and isinstance(v, int) and not isinstance(v, bool)} if isinstance(settings, dict) else {}
            rate = glob.get("core:sample_rate") if isinstance(glob, dict) else None
            if isinstance(rate, (int, float)) and not isinstance(rate, bool) and rate > 0:
                recorded["samp_rate"] = float(rate)
        for key, default in RX_DEFAULTS.items():
            given, rec = getattr(args, key, None), recorded.get(key)
            if given is None:
                setattr(args, key, rec if rec is not None else default)
            elif rec is not None and rec != given:
                _log("rx", f"--{key.replace('_', '-')} {given:g} differs from the recording's {rec:g}; "
                           f"using {given:g}")

    def run_app(self, stop_event) -> dict:
        """Receive until every expected frame is accounted for, the replay ran out and the link
        went quiet, --duration passed, or a signal; the report gives the accounting."""
        self.start()
        _log("rx", f"ready: source {self.args.endpoint}, decoder {self.dec.label}")
        t0 = time.monotonic()
        last, t_last, reason = None, time.monotonic(), "signal"
        silence = InputSilence(lambda text: _log("rx", text),
                               self.args.address if self.args.endpoint == "zmq" else self.args.endpoint)
        while not stop_event.is_set():
            now = time.monotonic()
            silence.update(now, self._samples_in(), self.rx.stats().get("frames", 0))
            if self._settled():
                reason = "all frames accounted for"
                break
            if self.args.frames and self.metrics.accounting()["decoded"] >= self.args.frames:
                reason = f"{self.args.frames} frames decoded"
                break
            progress = (self.rx.stats().get("frames", 0), self.metrics.accounting()["decoded"])
            if progress != last:
                last, t_last = progress, now
            heard = progress[0] > 0 or (self.replay is not None and self.replay.finished())
            if heard and now - t_last > self.args.idle_timeout:
                reason = f"quiet for {self.args.idle_timeout:g} s"
                break
            if self.args.duration and now - t0 > self.args.duration:
                reason = "duration"
                break
            stop_event.wait(0.05)
        elapsed = time.monotonic() - t0
        self.stop()
        self.wait()
        self.metrics.wait_idle(10)
        if self.recorder is not None:
            self.recorder.close()
        acc = self.metrics.accounting()
        rep = {"app": "rx", "source": self.args.endpoint, "stopped": reason, "elapsed_s": round(elapsed, 3),
               "samp_rate": self.args.samp_rate, "k": self.args.k, "first": self.args.first, "count": self.args.count,
               "decoder": self.dec.label, "model": self.dec.model.name, "rx": self.rx.stats(),
               "samples": self.replay.played() if self.replay is not None else int(self.samples.nitems_read(0)), **acc, "lost": acc["missing"] if self.refs else None,
               **self.metrics.summary(), **silence.report()}
        if self.zmq_in is not None:  # what arrived on the socket, malformed messages included
            rep["input"] = self.zmq_in.stats()
        if self.tx_chain is None:  # t_src of a reference made in this process: no end-to-end latency
            for key in ("e2e_latency_ms_p50", "e2e_latency_ms_p99"):
                rep.pop(key, None)
        if self.replay is not None:
            rep["nonfinite_samples"] = self.replay.nonfinite_samples
        if self.recorder is not None:
            rep["recording"] = self.recorder.meta_path
            rep["annotations"] = self.recorder.written_annotations
        return rep


class InputSilence:
    """Says in the log when the input stops (no sample for SILENT_S seconds after samples flowed:
    a channel process or TX that died or restarts) and when it comes back, with the gap's length
    and the frames detected since; the report counts the gaps and their seconds. Frames lost in a
    gap are what the accounting already counts as lost. Until the first sample it says, after
    NOTHING_S and then every NOTHING_REPEAT_S, that nothing has arrived from `source` yet."""

    SILENT_S = 2.0
    NOTHING_S, NOTHING_REPEAT_S = 5.0, 60.0

    def __init__(self, log, source: str = "the input"):
        self.log, self.source = log, source
        self.samples, self.t_change, self.silent_since = 0, None, None
        self.gaps, self.silent_s = 0, 0.0
        self.t_start, self.next_nothing = None, None

    def update(self, now: float, samples: int, frames: int | None):
        if self.t_start is None:
            self.t_start, self.next_nothing = now, now + self.NOTHING_S
        if not samples and self.t_change is None and now >= self.next_nothing:
            self.log(f"nothing received from {self.source} in {now - self.t_start:.0f} s: is its publisher "
                     "(the TX or the channel) running, at that address?")
            self.next_nothing = now + self.NOTHING_REPEAT_S
        if samples != self.samples:
            if self.silent_since is not None:
                gap = now - self.silent_since
                self.silent_s += gap
                self.log(f"input back after {gap:.1f} s of silence"
                         + ("" if frames is None else f" ({frames} frames detected so far)"))
                self.silent_since = None
            self.samples, self.t_change = samples, now
        elif self.t_change is not None and self.silent_since is None and now - self.t_change > self.SILENT_S:
            self.silent_since = self.t_change
            self.gaps += 1
            self.log(f"input silent: no sample for {self.SILENT_S:g} s"
                     + ("" if frames is None else f" ({frames} frames detected so far)"))

    def report(self) -> dict:
        return {"input_gaps": self.gaps, "input_silent_s": round(self.silent_s, 1)}


# --- command line -----------------------------------------------------------------------------------------

def _radio_args(p, endpoint_flag, choices, default):
    p.add_argument(endpoint_flag, dest="endpoint", choices=choices, default=default,
                   help=f"where the samples go / come from (default {default})")
    r = p.add_argument_group("radio")
    r.add_argument("--samp-rate", type=checks.positive_float, default=DEFAULT_RATE,
                   help=f"sample rate in samples/s (default {DEFAULT_RATE:g}; one OFDM subcarrier is samp-rate/64)")
    r.add_argument("--freq", type=checks.positive_float, default=DEFAULT_FREQ,
                   help=f"centre frequency in Hz for SDRs and SigMF metadata (default {DEFAULT_FREQ:g})")
    r.add_argument("--gain", type=checks.finite_float, default=30.0, help="SDR gain in dB, one overall number (default 30; a HackRF TX turns its RF amp on above 23)")
    r.add_argument("--device-args", default="",
                   help='UHD device address ("type=b200", "serial=...") or SoapySDR args (default "driver=hackrf")')
    r.add_argument("--antenna", default="", help="SDR antenna port (e.g. TX/RX, RX2); default: the driver's")
    r.add_argument("--hw", default="", help="hardware description written to SigMF (default: from the endpoint)")
    r.add_argument("--author", default="", help="SigMF author")
    r.add_argument("--description", default="", help="SigMF description")


def _channel_args(p):
    c = p.add_argument_group("simulated channel")
    c.add_argument("--snr", type=checks.float_range(-50.0, 100.0), default=15.0,
                   help="Es/N0 per payload symbol in dB (channel_sim), and the SNR the encoder designs for: "
                        "give TX and RX the same (the RX's decoder is conditioned on it), default 15")
    c.add_argument("--channel", default="awgn", choices=("awgn", "rayleigh", "selective"))
    c.add_argument("--cfo", type=checks.float_range(-32.0, 32.0), default=0.0, help="carrier frequency offset in subcarrier spacings")
    c.add_argument("--timing-offset", type=checks.float_range(0.0, 1e6), default=0.0, help="delay in samples (fractional allowed)")
    c.add_argument("--seed", type=checks.nonnegative_int, default=0, help="noise/fading seed (and the decoder's sampling seed)")


def _link_args(p):
    s = p.add_argument_group("semantic link")
    s.add_argument("--k", type=int, default=128, choices=(32, 128), help="complex channel uses per image")
    s.add_argument("--images", default="fashion-mnist", help="fashion-mnist (test split) or a folder of images")
    s.add_argument("--first", type=checks.nonnegative_int, default=0, help="index of the first image")
    s.add_argument("--count", type=checks.count_or_all, default=16,
                   help="number of images, or 'all' (RX: expected; all = not known)")
    s.add_argument("--models-dir", default="", help="ONNX models + cards (default models/)")
    s.add_argument("--provider", default="auto", choices=("auto", "tensorrt", "cuda", "cpu"))
    s.add_argument("--max-batch", type=checks.positive_int, default=8)
    s.add_argument("--threads", type=checks.nonnegative_int, default=1, help="ONNX Runtime intra-op threads (0 = its default)")


TX_DESCRIPTION = (
    "Encode images and send them as analog OFDM bursts. sim: through channel_sim (to --output or nowhere); "
    "zmq: continuous stream, zeros between bursts, ZMQ PUB bound at --address; file: SigMF recording of the "
    "bursts; uhd/soapy: an SDR.")


def add_tx_arguments(tx):
    """Arguments of the TX app (also `diffsem tx` through the CLI)."""
    _radio_args(tx, "--sink", ("sim", "zmq", "file", "uhd", "soapy"), "zmq")
    tx.add_argument("--address", type=checks.zmq_address, default=DEFAULT_TX_ADDRESS, help=f"ZMQ PUB address to bind (default {DEFAULT_TX_ADDRESS})")
    tx.add_argument("--output", type=checks.writable_file, default="", help="SigMF recording to write (sink file, or sim's channel output)")
    tx.add_argument("--amplitude", type=checks.float_range(1e-6, 1.0), default=0.3,
                    help="SDR sinks: scale of the unit-power OFDM samples (back-off against DAC clipping), default 0.3")
    _channel_args(tx)
    _link_args(tx)
    tx.add_argument("--rate", type=checks.nonnegative_float, default=0.0, help="images per second (0: as fast as the encoder goes)")
    tx.add_argument("--loop", action="store_true", help="send the images over and over (until Ctrl-C)")
    tx.add_argument("--start-delay", type=checks.float_range(0.0, 3600.0), default=1.0,
                    help="seconds before the first image (lets subscribers connect; default 1)")
    tx.add_argument("--linger", type=checks.float_range(0.0, 3600.0), default=1.0, help="seconds of zeros sent after the last burst (default 1)")


RX_DESCRIPTION = (
    "Receive analog OFDM frames and regenerate the images. sim: an in-process TX + channel_sim; zmq: ZMQ SUB "
    "connected to --address; file: SigMF replay (--input); uhd/soapy: an SDR. --record writes the RX input as "
    "SigMF with one annotation per detected frame.")


def add_rx_arguments(rx):
    """Arguments of the RX app (also `diffsem rx`)."""
    _radio_args(rx, "--source", ("sim", "zmq", "file", "uhd", "soapy"), "zmq")
    rx.add_argument("--address", type=checks.zmq_address, default=DEFAULT_RX_ADDRESS, help=f"ZMQ address to subscribe to (default {DEFAULT_RX_ADDRESS})")
    rx.add_argument("--input", default="", help="SigMF recording to replay (source file)")
    rx.add_argument("--throttle", action="store_true", help="replay at the recorded sample rate (default: as fast as possible)")
    rx.add_argument("--record", type=checks.writable_file, default="", help="write the RX input IQ to this SigMF recording, frames annotated")
    rx.add_argument("--record-seconds", type=checks.nonnegative_float, default=0.0,
                    help="record at most this many seconds of IQ (0: all; frames after the limit are not annotated)")
    _channel_args(rx)
    _link_args(rx)
    rx.add_argument("--decoder", default="diffusion:2", help="diffusion:<1|2|4> or deepjscc (default diffusion:2)")
    rx.add_argument("--no-salvage", action="store_true",
                    help="drop a frame whose header fails its CRC instead of decoding it with the link's k known")
    rx.add_argument("--max-queue", type=checks.positive_int, default=64,
                    help="frames waiting for the decoder before the oldest is dropped (counted), default 64")
    rx.add_argument("--no-classifier", action="store_true", help="skip the classifier verdict per frame")
    rx.add_argument("--image-folder", type=checks.writable_dir, default="", help="write the reconstructions as PNG here")
    rx.add_argument("--image-limit", type=checks.nonnegative_int, default=10000,
                    help="keep at most this many PNGs in --image-folder, the oldest removed (0: no limit; default 10000)")
    rx.add_argument("--taps", type=checks.optional_zmq_address, default="", help="ZMQ taps address, e.g. tcp://127.0.0.1:5560 (default off)")
    rx.add_argument("--taps-pmt", type=checks.optional_zmq_address, default="",
                    help="also publish the taps as PMT PDUs for a stock ZMQ SUB Message Source, e.g. tcp://127.0.0.1:5561 (default off)")
    rx.add_argument("--idle-timeout", type=checks.nonnegative_float, default=5.0,
                    help="stop after this many seconds without a new frame once frames were heard (default 5)")
    rx.add_argument("--duration", type=checks.nonnegative_float, default=0.0, help="stop after this many seconds (0: no limit)")
    rx.add_argument("--frames", type=checks.nonnegative_int, default=0, help="stop after this many decoded frames (0: no limit)")
    # None: not given. A replayed recording supplies what its TX was told (RxApp._settle_args)
    rx.set_defaults(rate=0.0, loop=False, start_delay=0.2, k=None, first=None, count=None, samp_rate=None)


# what the RX defaults to where neither the command line nor a recording says
RX_DEFAULTS = {"k": 128, "first": 0, "count": 16, "samp_rate": DEFAULT_RATE}


CHANNEL_DESCRIPTION = (
    "The channel process of the three-process radio: subscribes to the TX stream, applies channel_sim "
    "(AWGN / fading, CFO, timing offset), publishes the result for the RX.")


def add_channel_arguments(ch):
    """Arguments of the channel app (also `diffsem channel`)."""
    ch.add_argument("--in", dest="input", type=checks.zmq_address, default=DEFAULT_TX_ADDRESS, help=f"TX stream to subscribe to (default {DEFAULT_TX_ADDRESS})")
    ch.add_argument("--out", dest="output", type=checks.zmq_address, default=DEFAULT_RX_ADDRESS, help=f"address to publish on (default {DEFAULT_RX_ADDRESS})")
    _channel_args(ch)
    ch.add_argument("--duration", type=checks.nonnegative_float, default=0.0, help="stop after this many seconds (0: until Ctrl-C)")


DESCRIPTIONS = {"tx": TX_DESCRIPTION, "rx": RX_DESCRIPTION, "channel": CHANNEL_DESCRIPTION}
ADDERS = {"tx": add_tx_arguments, "rx": add_rx_arguments, "channel": add_channel_arguments}


APPS = {"tx": TxApp, "rx": RxApp, "channel": ChannelApp}


def run(args) -> int:
    """Build and run one app (args.app); one JSON report line on stdout. Exit 2 with one sentence when an
    endpoint or model cannot be opened."""
    from diffsem.runtime.cards import CardError
    from diffsem.runtime import ProviderUnavailable
    stop_event = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():  # Ctrl-C / kill end the run cleanly
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop_event.set())
    try:
        try:
            app = APPS[args.app](args)
        except (EndpointError, CardError, ProviderUnavailable, ValueError) as exc:
            _log(args.app, str(exc))
            return 2
        report = app.run_app(stop_event)
    finally:
        for sig, handler in previous.items():  # a caller in the same process gets its handlers back
            signal.signal(sig, handler)
    print(json.dumps(report, default=float), flush=True)
    return 0
