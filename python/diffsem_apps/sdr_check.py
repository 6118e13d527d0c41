"""Fail fast, in one sentence, when a hardware flowgraph's radio is missing.

The generated scripts of flowgraphs/{usrp,hackrf}_{tx,rx}.grc call require_radio() from a
"Init - Before Blocks" snippet: it opens the radio once through the endpoints the diffsem apps use
(endpoints.uhd_endpoint / soapy_endpoint), releases it, and turns a failure into SystemExit with one
sentence, so a missing USRP or HackRF ends the script with exit status 1 and no traceback instead
of an exception from deep inside the UHD / SoapySDR block constructors.
"""
from __future__ import annotations

from .endpoints import EndpointError, soapy_endpoint, uhd_endpoint

RADIOS = {
    # name: (what the sentence calls it, how to open it)
    "uhd": ("USRP", uhd_endpoint),
    "hackrf": ("HackRF", soapy_endpoint),
}


def soapy_hackrf_args(device_args: str) -> str:
    """The SoapySDR arguments gr-soapy's HackRF blocks use: driver=hackrf plus the user's (serial=...)."""
    extra = str(device_args or "").strip().strip(",")
    return "driver=hackrf" + (f",{extra}" if extra else "")


def require_radio(flowgraph: str, radio: str, direction: str, device_args: str = "", samp_rate: float = 2e6,
                  center_freq: float = 2.45e9, gain: float = 0.0, antenna: str = "") -> None:
    """Open and release the radio the flowgraph is about to use; SystemExit(one sentence) if none answers.

    radio: "uhd" (a USRP through gr-uhd) or "hackrf" (a HackRF through gr-soapy); direction: "tx" | "rx".
    The settings are those of the flowgraph, so an out-of-range frequency or rate is reported here too.
    """
    if radio not in RADIOS:
        raise ValueError(f"radio must be one of {sorted(RADIOS)}, not {radio!r}")
    if direction not in ("tx", "rx"):
        raise ValueError(f"direction must be 'tx' or 'rx', not {direction!r}")
    label, open_endpoint = RADIOS[radio]
    args = soapy_hackrf_args(device_args) if radio == "hackrf" else str(device_args or "")
    try:
        device = open_endpoint(direction, samp_rate, center_freq, gain, args, antenna)
    except EndpointError as exc:
        raise SystemExit(f"{flowgraph}: cannot start without a {label} ({exc}); connect one, or name it with "
                         f"--dev-args, and run again.") from None
    del device  # released here; the flowgraph's own source/sink block opens it again right after
