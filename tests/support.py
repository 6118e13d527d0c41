"""Helpers the test folders share that are not fixtures (the fixtures are in conftest.py): the tiny
exported models, a small exact stand-in Scheme, running one block, compiling a flowgraph, the
radio apps as OS processes.
Heavy imports (torch, scipy, GNU Radio) stay inside the functions, so a core test that imports
this module does not load GNU Radio."""
from __future__ import annotations

import functools
import importlib.util
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"


# --- tiny models: the ONNX contract without the trained models --------------------------------
# A fixed linear encoder and its pseudo-inverse decoders, exported with torch.onnx (dynamo=False)
# and carded with cards.make_card/write_card, so the whole contract (names, shapes, sha256) is
# exercised without the trained models.

TINY_K = 64


def export_tiny_models(folder, k: int = TINY_K, steps=(1, 2)):
    """encoder_k{k}, deepjscc_k{k}, student_k{k}_s{steps} (.onnx + .json cards) in `folder`."""
    import torch

    from diffsem.runtime.cards import make_card, write_card

    gen = torch.Generator().manual_seed(1234)
    proj = torch.randn(784, 2 * k, generator=gen) / 28.0
    inv = torch.linalg.pinv(proj)  # least-squares decoder of the linear code

    class Encoder(torch.nn.Module):
        def forward(self, image, snr_db):
            # `0 * snr_db` keeps the input in the exported graph (the contract's SNR-adaptive encoder)
            z = image.reshape(image.shape[0], 784) @ proj + 0.0 * snr_db[:, None]
            z = z.reshape(-1, k, 2)
            power = z.pow(2).sum(dim=(1, 2), keepdim=True) / k
            return z / torch.sqrt(power + 1e-12)

    class DeepJscc(torch.nn.Module):
        def forward(self, symbols, snr_db, noise_var):
            weight = 1.0 / (1.0 + noise_var)  # shrink noisy symbols a little (uses every input)
            z = (symbols * weight[..., None]).reshape(symbols.shape[0], 2 * k)
            return (z @ inv).reshape(-1, 1, 28, 28).clamp(0, 1) + 0.0 * snr_db[:, None, None, None]

    class Student(DeepJscc):
        def forward(self, symbols, snr_db, noise_var, noise):
            return (super().forward(symbols, snr_db, noise_var) + 0.02 * noise).clamp(0, 1)

    b = 2
    examples = {
        "encoder": (Encoder(), (torch.rand(b, 1, 28, 28), torch.full((b,), 10.0)), ["image", "snr_db"], ["symbols"]),
        "deepjscc": (DeepJscc(), (torch.randn(b, k, 2), torch.full((b,), 10.0), torch.rand(b, k)),
                     ["symbols", "snr_db", "noise_var"], ["image"]),
        "student": (Student(), (torch.randn(b, k, 2), torch.full((b,), 10.0), torch.rand(b, k),
                                torch.randn(b, 1, 28, 28)), ["symbols", "snr_db", "noise_var", "noise"], ["image"]),
    }
    roles = {"encoder": "encoder", "deepjscc": "deepjscc_decoder", "student": "student"}
    paths = {}
    for kind, (module, args, in_names, out_names) in examples.items():
        names = [f"student_k{k}_s{s}" for s in steps] if kind == "student" else [f"{kind}_k{k}"]
        for name in names:
            onnx_path = folder / f"{name}.onnx"
            with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice
                warnings.simplefilter("ignore", DeprecationWarning)
                torch.onnx.export(module, args, str(onnx_path), input_names=in_names, output_names=out_names,
                                  dynamic_axes={n: {0: "batch"} for n in in_names + out_names},
                                  opset_version=17, dynamo=False)
            steps_of = int(name.rsplit("_s", 1)[1]) if kind == "student" else None
            card = make_card(onnx_path, name=name, role=roles[kind], k=k, steps=steps_of)
            paths[name] = write_card(folder / f"{name}.json", card)
    return paths


# --- a stand-in Scheme for the evaluation harness --------------------------------------------------
# A small, exact stand-in for diffsem.experiments.schemes.Scheme used to test the evaluation harness.
#
# Transform coding: the encoder sends the 2k lowest-frequency 2-D DCT coefficients of the image
# minus the mean image (scaled to unit average power per complex symbol); the decoder applies a
# per-coefficient LMMSE gain that uses the reported per-symbol noise variance and inverts the DCT.
# Quality therefore rises with SNR and drops on a fading channel, which the tests check. The
# statistics come from test images 5000-5999 (the tests score the first few hundred), so nothing
# heavy runs at import: no training set, no SVD.

@functools.lru_cache(maxsize=None)
def _stats():
    from scipy.fft import dctn

    from diffsem import data
    images = data.load("test")[0][5000:6000, 0].astype(np.float64)
    mean = images.mean(0)
    coef = dctn(images - mean, axes=(1, 2), norm="ortho")
    u, v = np.meshgrid(np.arange(28), np.arange(28), indexing="ij")
    order = np.lexsort((u.ravel(), (u + v).ravel()))  # zig-zag-like: low frequencies first
    return mean, order, coef.reshape(len(images), -1).var(0)


class DctScheme:
    def __init__(self, k: int = 16, name: str = "deepjscc", steps=None, fail_on=None):
        self.name, self.k, self.steps = name, k, steps
        self.mean, order, var = _stats()
        self.index = order[:2 * k]
        self.scale = np.sqrt(var[self.index].sum() / k)       # unit average power per complex symbol
        self.coef_var = var[self.index] / self.scale ** 2       # per real component, after scaling
        self.fail_on = fail_on
        self.encode_snr_db, self.last_encode_snr = 10.0, None

    def encode(self, images, snr_db=None):
        self.last_encode_snr = snr_db  # an SNR-adaptive encoder would use it; this one records it
        from scipy.fft import dctn
        coef = dctn(images[:, 0] - self.mean, axes=(1, 2), norm="ortho").reshape(len(images), -1)
        return (coef[:, self.index] / self.scale).reshape(len(images), self.k, 2).astype(np.float32)

    def decode(self, symbols, snr_db, noise_var, rng):
        assert symbols.shape == (len(symbols), self.k, 2) and snr_db.shape == (len(symbols),)
        assert noise_var.shape == (len(symbols), self.k) and isinstance(rng, np.random.Generator)
        cv = self.coef_var.reshape(self.k, 2)
        gain = cv / (cv + noise_var[..., None] / 2)             # LMMSE per real component
        coef = np.zeros((len(symbols), 28 * 28))
        coef[:, self.index] = (symbols * gain).reshape(len(symbols), -1) * self.scale
        from scipy.fft import idctn
        image = self.mean + idctn(coef.reshape(-1, 28, 28), axes=(1, 2), norm="ortho")
        out = np.clip(image, 0, 1)[:, None].astype(np.float32)
        if self.fail_on is not None:
            out[self.fail_on] = np.nan
        return out


# --- GNU Radio ---------------------------------------------------------------------------------------

def run_block(block, x):
    """Samples x through one stream block in a fresh top block; returns what came out."""
    from gnuradio import blocks, gr
    tb = gr.top_block()
    sink = blocks.vector_sink_c()
    tb.connect(blocks.vector_source_c(np.asarray(x, np.complex64).tolist()), block, sink)
    tb.run()
    return np.array(sink.data())


def grcc(grc, out_dir) -> Path:
    """Compile flowgraphs/<grc> (a name or a path) with grcc against the repo's block YAML; the
    generated script's path."""
    grc = Path(grc) if Path(grc).suffix == ".grc" and Path(grc).exists() else REPO / "flowgraphs" / f"{Path(grc).stem}.grc"
    extra = os.environ.get("GRC_BLOCKS_PATH")
    env = dict(os.environ, GRC_BLOCKS_PATH=str(REPO / "grc") + (f":{extra}" if extra else ""), QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([shutil.which("grcc") or "grcc", "-o", str(out_dir), str(grc)],
                          capture_output=True, text=True, env=env, timeout=120)
    script = Path(out_dir) / f"{grc.stem}.py"
    assert proc.returncode == 0 and script.is_file(), f"grcc failed on {grc.name}:\n{proc.stdout}\n{proc.stderr}"
    return script


def import_script(path, name: str | None = None):
    """A generated flowgraph script as a module."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_until_accounted(tb, n: int, timeout: float = 60.0) -> dict:
    """Run a generated link flowgraph (image_source ... link_metrics) until its metrics account
    for all `n` images or `timeout` passes; its frame accounting."""
    import time
    met, src = tb.diffsem_link_metrics_0, tb.diffsem_image_source_0
    tb.start()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            acc = met.accounting()
            if src.finished() and acc["sent"] == n and acc["missing"] == 0 and met.wait_idle(0):
                break
            time.sleep(0.05)
    finally:
        tb.stop()
        tb.wait()
    return met.accounting()


# ----------------------------------------------------------------------------- apps as processes

def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class App:
    """One app as an OS process; stderr lines are collected so the test can wait for "ready"."""

    def __init__(self, *argv):
        self.proc = subprocess.Popen([sys.executable, "-m", "diffsem_apps.cli", *argv], cwd=REPO,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.err: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stderr:
            self.err.append(line)
            self.lines.put(line)

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if ": ready:" in self.lines.get(timeout=0.5):
                    return
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
        raise AssertionError(f"app not ready after {timeout} s: {''.join(self.err)[-2000:]}")

    def report(self, timeout) -> dict:
        out, _ = self.proc.communicate(timeout=timeout)
        assert self.proc.returncode == 0, f"exit {self.proc.returncode}: {''.join(self.err)[-2000:]}"
        return json.loads(out.strip().splitlines()[-1])

    def kill(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
