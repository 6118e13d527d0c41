"""`diffsem train <recipe>`: the training pipeline, stage by stage, resumable.

Stages (each its own checkpoint in the run folder, each resumable mid-epoch):
  jscc      encoder + DeepJSCC decoder, trained jointly over SNR and channels (MSE)
  ablation  the same decoder architecture without per-symbol noise variance (encoder frozen);
            its recipe block may override the training channel (e.g. `channel: {kinds: [awgn]}`
            trains the AWGN-only, SNR-adaptive decoder of the DeepJSCC literature)
  teacher   the diffusion decoder's velocity network, encoder and DeepJSCC decoder frozen
  distill   progressive distillation of the teacher, halving the step count each round
A stage may start from earlier weights instead of its usual init: `jscc.init` (another run's
jscc.pt), `teacher.init` and `distill.init` (an exported graph's U-Net, pinned by sha256).

Determinism: the data order of epoch e is a permutation seeded by (seed, e) and the channel
and noise draws of iteration i by (seed, stage, e, i), so a run resumed from a checkpoint sees
exactly the batches it would have seen.
"""
from __future__ import annotations

import copy
import json
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from diffsem import data
from diffsem.channel import CHANNELS, IMPAIRMENTS, transmit
from diffsem.nn.diffusion import distillation_loss, flow_matching_loss, to_signed
from diffsem.nn.models import (AnalogBasis, CondUNet, HybridDecoder, HybridEncoder, JSCCDecoder, SemanticEncoder,
                               count_parameters)

STAGES = ("jscc", "ablation", "teacher", "distill")
CHECKPOINT_EVERY_S = 60.0


def load_recipe(path) -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"recipe {path} not found (see models/recipes/)")
    from diffsem.nn.recipe_check import check
    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"recipe {path}: not valid YAML ({' '.join(str(exc).split())})") from None
    check(cfg, str(path))  # every key known and typed, before anything trains or is written
    cfg.setdefault("name", path.stem)
    cfg["recipe_path"] = str(path)
    return cfg


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def hardware_string(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (torch {torch.__version__})"
    import os
    return f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores (torch {torch.__version__})"


# ----------------------------------------------------------------------------- model factories

ARCHES = ("conv", "hybrid")
LOSSES = ("mse", "logmse")


def _arch(cfg) -> str:
    arch = cfg["jscc"].get("arch", "conv")
    if arch not in ARCHES:
        raise ValueError(f"recipe jscc.arch {arch!r}: choose one of {ARCHES}")
    return arch


def build_basis(cfg, fitted: bool = True) -> AnalogBasis:
    """The linear code the hybrid codec is built around: the shipped PCA basis, or (fitted=False)
    zero buffers of the right shape for loading a checkpoint that carries them."""
    if not fitted:
        return AnalogBasis.zeros(cfg["k"])
    from diffsem.pca_basis import load_basis
    b = load_basis()
    return AnalogBasis(cfg["k"], b["mean"], b["components"], b["eigenvalues"])


def build_encoder(cfg, basis: AnalogBasis | None = None):
    width = cfg["jscc"].get("width", 64)
    if _arch(cfg) == "hybrid":
        return HybridEncoder(basis if basis is not None else build_basis(cfg), width=width)
    return SemanticEncoder(cfg["k"], width=width)


def build_decoder(cfg, use_noise_var=True, basis: AnalogBasis | None = None):
    width = cfg["jscc"].get("width", 64)
    if _arch(cfg) == "hybrid":
        return HybridDecoder(basis if basis is not None else build_basis(cfg), width=width,
                             use_noise_var=use_noise_var)
    return JSCCDecoder(cfg["k"], width=width, use_noise_var=use_noise_var)


def reconstruction_loss(image, target, kind: str = "mse"):
    """"mse": the batch's mean squared error. "logmse": the mean over images of log(MSE), i.e. minus
    the mean per-image PSNR up to a constant. With "mse" the images received at low SNR, whose
    errors are largest, dominate the gradient and the codec stops improving at high SNR; "logmse"
    weighs every image by its own error, which is the figure the evaluation reports."""
    if kind not in LOSSES:
        raise ValueError(f"recipe jscc.loss {kind!r}: choose one of {LOSSES}")
    mse = (image - target).pow(2).flatten(1).mean(1)
    return mse.mean() if kind == "mse" else mse.clamp_min(1e-6).log().mean()


def build_unet(cfg) -> CondUNet:
    """The velocity network. `teacher.knob: true` conditions it on the sampling temperature it is
    trained at (diffusion.draw_temperature); `teacher.symbols: true` also feeds it the received
    symbols and reliabilities directly."""
    t = cfg["teacher"]
    return CondUNet(width=t.get("width", 32), feat_channels=cfg["jscc"].get("width", 64),
                    knob=bool(t.get("knob", False)), symbols_k=cfg["k"] if t.get("symbols", False) else None)


# ----------------------------------------------------------------------------- training helpers

class EMA:
    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model):
        for s, p in zip(self.shadow.parameters(), model.parameters()):
            s.lerp_(p.detach(), 1 - self.decay)


def cosine_lr(step: int, total: int, base: float, warmup: int = 200) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def _seed_of(*parts) -> int:
    h = 1469598103934665603
    for p in parts:
        for ch in str(p):
            h = ((h ^ ord(ch)) * 1099511628211) % (1 << 63)
    return h


class Batches:
    """Deterministic shuffled mini-batches of the (device-resident) training images."""

    def __init__(self, images: torch.Tensor, batch: int, seed: int):
        self.images, self.batch, self.seed = images, batch, seed
        self.per_epoch = len(images) // batch

    def epoch(self, e: int, start: int = 0):
        g = torch.Generator().manual_seed(_seed_of(self.seed, "perm", e))
        perm = torch.randperm(len(self.images), generator=g).to(self.images.device)
        for i in range(start, self.per_epoch):
            yield i, self.images[perm[i * self.batch:(i + 1) * self.batch]]


def stage_recipe(cfg: dict, stage: str) -> dict:
    """The recipe as `stage` sees it: its own `channel` block, if any, overrides the recipe's."""
    override = (cfg.get(stage) or {}).get("channel")
    return {**cfg, "channel": {**cfg["channel"], **override}} if override else cfg


def channel_batch(x: torch.Tensor, cfg: dict, gen: torch.Generator, it: int):
    """SNR uniform over the recipe's range; the channel cycles over the recipe's kinds; fading
    channels use estimated CSI for a set fraction of batches."""
    ch = cfg["channel"]
    kinds = ch.get("kinds", list(CHANNELS))
    kind = kinds[it % len(kinds)]
    lo, hi = ch.get("snr_min", -5.0), ch.get("snr_max", 25.0)
    snr = lo + (hi - lo) * torch.rand(x.shape[0], generator=gen, device=x.device)
    csi = "perfect"
    if kind != "awgn" and torch.rand(1, generator=gen, device=x.device).item() < ch.get("estimated_csi_fraction", 0.5):
        csi = "estimated"
    return snr, kind, csi


def impairment_batch(x: torch.Tensor, cfg: dict, gen: torch.Generator):
    """The partial-frame impairment of a batch (channel.impair), or None. With the recipe's
    `channel.impairments: {probability, max_fraction, sir_db: [lo, hi]}` a batch is hit with that
    probability, by one kind drawn uniformly, each image with its own fraction in [0, max_fraction]
    (and, for a narrowband interferer, its own SIR), so decoders learn to fill what is missing."""
    imp = cfg["channel"].get("impairments")
    if not imp:
        return None
    u = torch.rand(3, generator=gen, device=x.device).tolist()
    if u[0] >= imp.get("probability", 0.25):
        return None
    kinds = imp.get("kinds", [k for k in IMPAIRMENTS if k != "none"])
    kind = kinds[min(int(u[1] * len(kinds)), len(kinds) - 1)]
    b = x.shape[0]
    fraction = imp.get("max_fraction", 0.5) * torch.rand(b, generator=gen, device=x.device)
    lo, hi = imp.get("sir_db", [-10.0, 10.0])
    sir = lo + (hi - lo) * torch.rand(b, generator=gen, device=x.device)
    return kind, fraction, sir


class Stage:
    """Checkpointed training loop shared by all stages: `step(batch, gen, it) -> loss`."""

    def __init__(self, name, run_dir: Path, modules: dict, params, scfg: dict, cfg: dict, device, ema_of=None,
                 step_limit: int | None = None):
        self.name, self.run_dir, self.modules, self.cfg, self.scfg = name, run_dir, modules, cfg, scfg
        self.step_limit = step_limit  # stop after this many steps and record their pace (bench train)
        self.device = device
        self.opt = torch.optim.AdamW(params, lr=scfg["lr"], weight_decay=scfg.get("weight_decay", 0.0))
        self.ema = EMA(modules[ema_of], scfg.get("ema", 0.999)) if ema_of else None
        self.ema_of = ema_of
        self.path = run_dir / f"{name}.pt"

    def state(self, epoch, it, done, log):
        st = {"modules": {k: m.state_dict() for k, m in self.modules.items()},
              "epoch": epoch, "it": it, "done": done, "log": log}
        if not done:  # a finished stage keeps only its weights (small enough to ship and carry)
            st["opt"] = self.opt.state_dict()
        if self.ema and not done:
            st["ema"] = self.ema.shadow.state_dict()
        return st

    def save(self, *a):
        tmp = self.path.with_suffix(".tmp")
        torch.save(self.state(*a), tmp)
        tmp.replace(self.path)

    def run(self, images: torch.Tensor, step_fn, progress=True) -> dict:
        epoch, start_it, log = 0, 0, {"loss": [], "time_s": 0.0}
        if self.path.exists():
            st = torch.load(self.path, map_location=self.device, weights_only=True)
            for k, m in self.modules.items():
                m.load_state_dict(st["modules"][k])
            if self.ema and "ema" in st:
                self.ema.shadow.load_state_dict(st["ema"])
            log = st["log"]
            if st["done"]:
                print(f"[{self.cfg['name']}:{self.name}] already done, skipping")
                return log
            self.opt.load_state_dict(st["opt"])
            epoch, start_it = st["epoch"], st["it"]
            print(f"[{self.cfg['name']}:{self.name}] resuming at epoch {epoch} iteration {start_it}")
        batches = Batches(images, self.scfg["batch"], self.cfg["seed"])
        epochs = self.scfg["epochs"]
        total = epochs * batches.per_epoch
        t_last_save = time.time()
        t0 = time.time() - log["time_s"]
        t_here, step_times = time.time(), []  # this process's steps: its pace, for the ETA and bench train
        from tqdm import tqdm
        for e in range(epoch, epochs):
            bar = tqdm(total=batches.per_epoch, initial=start_it, disable=not progress, leave=False,
                       desc=f"{self.cfg['name']}:{self.name} {e + 1}/{epochs}", mininterval=5)
            running = []
            for it, x in batches.epoch(e, start_it):
                if self.step_limit is not None and len(step_times) >= self.step_limit:
                    break
                t_step = time.perf_counter()
                step = e * batches.per_epoch + it
                for group in self.opt.param_groups:
                    group["lr"] = cosine_lr(step, total, self.scfg["lr"])
                gen = torch.Generator(device=self.device).manual_seed(_seed_of(self.cfg["seed"], self.name, e, it))
                loss = step_fn(x, gen, it)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_([p for g in self.opt.param_groups for p in g["params"]], 1.0)
                self.opt.step()
                if self.ema:
                    self.ema.update(self.modules[self.ema_of])
                running.append(loss.detach())
                step_times.append(time.perf_counter() - t_step)
                bar.update(1)
                if time.time() - t_last_save > CHECKPOINT_EVERY_S:
                    log["time_s"] = time.time() - t0
                    self.save(e, it + 1, False, log)
                    t_last_save = time.time()
            bar.close()
            start_it = 0
            if self.step_limit is not None and len(step_times) >= self.step_limit:
                steps = step_times[1:] or step_times  # the first step pays for allocations
                log["pace"] = {"steps": len(steps), "s_per_step": sorted(steps)[len(steps) // 2],
                               "steps_in_stage": total}
                break
            log["loss"].append(float(torch.stack(running).mean()) if running else float("nan"))
            log["time_s"] = time.time() - t0
            eta = _eta(time.time() - t_here, len(step_times), total - (e + 1) * batches.per_epoch)
            print(f"[{self.cfg['name']}:{self.name}] epoch {e + 1}/{epochs} loss {log['loss'][-1]:.5f} "
                  f"({log['time_s']:.0f} s, stage ETA {eta})", flush=True)
            self.save(e + 1, 0, False, log)
        if self.ema:  # what later stages and the export use
            self.modules[self.ema_of].load_state_dict(self.ema.shadow.state_dict())
        self.save(epochs, 0, True, log)
        return log


def _eta(elapsed_s: float, steps_done: int, steps_left: int) -> str:
    """Time left in a stage at this process's pace (a resumed run's earlier steps may have run on
    other hardware or beside other jobs)."""
    if steps_left <= 0:
        return "0 s"
    left = elapsed_s / max(1, steps_done) * steps_left
    return f"{left / 3600:.1f} h" if left > 5400 else f"{left / 60:.0f} min"


# ----------------------------------------------------------------------------- the pipeline

def train_recipe(cfg: dict, run_dir: Path, device: torch.device, stages=STAGES, progress=True,
                 step_limit: int | None = None) -> dict:
    """Run the recipe's stages into run_dir. `step_limit`: run only that many steps of each stage
    and record their pace in the summary (`diffsem bench train`)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg["seed"])
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    images, _ = data.load("train")
    limit = cfg.get("data", {}).get("limit")
    if limit:
        images = images[:limit]
    x_train = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    summary.update({"recipe": cfg, "hardware": hardware_string(device)})

    def record(stage: str, log: dict):  # after every stage, so a finished stage exports while the next trains
        summary.setdefault("stages", {})[stage] = log
        summary_path.write_text(json.dumps(summary, indent=1, default=str))

    basis = build_basis(cfg) if _arch(cfg) == "hybrid" else None
    enc, dec = build_encoder(cfg, basis).to(device), build_decoder(cfg, basis=basis).to(device)
    loss_kind = cfg["jscc"].get("loss", "mse")
    summary["params"] = {"encoder": count_parameters(enc), "deepjscc_decoder": count_parameters(dec)}

    # jscc.init: start from another run's jscc.pt (a fine-tune); jscc.train: "decoder" keeps the
    # encoder as it came (erasure training of the decoder alone, on a codec trained without them)
    jcfg = cfg["jscc"]
    trained = jcfg.get("train", "both")
    if trained not in ("both", "decoder"):
        raise ValueError(f"jscc.train {trained!r}: choose both or decoder")
    if trained == "decoder":  # eval: the encoder's tracked power stays what the codec ships with
        enc.eval().requires_grad_(False)

    def jscc_step(x, gen, it):
        snr, kind, csi = channel_batch(x, cfg, gen, it)
        imp = impairment_batch(x, cfg, gen)
        s_hat, nv = transmit(enc(x, snr), snr, kind, csi, generator=gen, impairment=imp)
        return reconstruction_loss(dec.features(s_hat, snr, nv)[0], x, loss_kind)

    if "jscc" in stages or not (run_dir / "jscc.pt").exists():
        if jcfg.get("init") and not (run_dir / "jscc.pt").exists():
            _load_modules(Path(jcfg["init"]), {"encoder": enc, "decoder": dec}, device)
        params = list(dec.parameters()) + (list(enc.parameters()) if trained == "both" else [])
        st = Stage("jscc", run_dir, {"encoder": enc, "decoder": dec}, params, jcfg, cfg, device,
                   step_limit=step_limit)
        record("jscc", st.run(x_train, jscc_step, progress))
    _load_modules(run_dir / "jscc.pt", {"encoder": enc, "decoder": dec}, device)
    enc.eval().requires_grad_(False)

    if "ablation" in stages:
        abl = build_decoder(cfg, use_noise_var=False, basis=basis).to(device)
        abl_cfg = stage_recipe(cfg, "ablation")

        def ablation_step(x, gen, it):
            snr, kind, csi = channel_batch(x, abl_cfg, gen, it)
            imp = impairment_batch(x, abl_cfg, gen)
            with torch.no_grad():
                s_hat, nv = transmit(enc(x, snr), snr, kind, csi, generator=gen, impairment=imp)
            return reconstruction_loss(abl.features(s_hat, snr, nv)[0], x, loss_kind)

        acfg = {**cfg["jscc"], **cfg.get("ablation", {})}  # Stage reads only its own keys; `channel` is abl_cfg's
        st = Stage("ablation", run_dir, {"decoder": abl}, abl.parameters(), acfg, cfg, device, step_limit=step_limit)
        record("ablation", st.run(x_train, ablation_step, progress))

    dec.eval().requires_grad_(False)
    sigma = cfg["teacher"]["source_sigma"]

    def conditioned(x, gen, it):
        snr, kind, csi = channel_batch(x, cfg, gen, it)
        imp = impairment_batch(x, cfg, gen)
        with torch.no_grad():
            s_hat, nv = transmit(enc(x, snr), snr, kind, csi, generator=gen, impairment=imp)
            img_hat, feat = dec.features(s_hat, snr, nv)
            sym = dec.symbol_inputs(s_hat, snr, nv) if cfg["teacher"].get("symbols", False) else None
        return to_signed(x), to_signed(img_hat.clamp(0.0, 1.0)), feat, snr, sym

    unet = build_unet(cfg).to(device)
    summary["params"]["unet"] = count_parameters(unet)
    if "teacher" in stages:
        if cfg["teacher"].get("init") and not (run_dir / "teacher.pt").exists():
            _start_from_graph(unet, cfg["teacher"]["init"], "teacher.init")

        def teacher_step(x, gen, it):
            x0, x_hat, feat, snr, sym = conditioned(x, gen, it)
            return flow_matching_loss(unet, x0, x_hat, feat, snr, sigma, gen, sym=sym)

        st = Stage("teacher", run_dir, {"unet": unet}, unet.parameters(), cfg["teacher"], cfg, device, ema_of="unet",
                       step_limit=step_limit)
        record("teacher", st.run(x_train, teacher_step, progress))

    if "distill" in stages:
        _load_modules(run_dir / "teacher.pt", {"unet": unet}, device)
        dcfg = cfg["distill"]
        teacher, teacher_steps = unet, cfg["teacher"]["steps"]
        if set(dcfg.get("init", {})) - set(dcfg["rounds"]):
            raise ValueError(f"distill.init names rounds {sorted(set(dcfg['init']) - set(dcfg['rounds']))} "
                             f"that are not in distill.rounds {dcfg['rounds']}")
        for n in dcfg["rounds"]:
            if teacher_steps % n:
                raise ValueError(f"distillation round {n} does not divide the previous {teacher_steps} steps")
            teacher.eval().requires_grad_(False)
            student = copy.deepcopy(teacher).train().requires_grad_(True)
            round_cfg = dcfg
            if n in dcfg.get("init", {}):  # warm start: fewer epochs and a gentler rate (init_epochs, init_lr)
                if not (run_dir / f"distill_s{n}.pt").exists():
                    _start_from_graph(student, dcfg["init"][n], f"distill.init.{n}")
                round_cfg = {**dcfg, "epochs": dcfg.get("init_epochs", dcfg["epochs"]),
                             "lr": dcfg.get("init_lr", dcfg["lr"])}

            def distill_step(x, gen, it, student=student, teacher=teacher, n=n, m=teacher_steps // n):
                x0, x_hat, feat, snr, sym = conditioned(x, gen, it)
                return distillation_loss(student, teacher, n, x0, x_hat, feat, snr, sigma, gen, teacher_substeps=m,
                                         sym=sym)

            st = Stage(f"distill_s{n}", run_dir, {"unet": student}, student.parameters(), round_cfg, cfg, device,
                       ema_of="unet", step_limit=step_limit)
            record(f"distill_s{n}", st.run(x_train, distill_step, progress))
            teacher, teacher_steps = student, n
    summary_path.write_text(json.dumps(summary, indent=1, default=str))
    return summary


def _start_from_graph(unet, init, where: str):
    """Set a U-Net to the one inside an exported graph: `init` is {graph: PATH, sha256: HEX}, the
    sha256 pinning the file so the recipe names the same weights after that graph is replaced."""
    from diffsem.nn.runs import load_unet_from_onnx
    if not isinstance(init, dict) or not {"graph", "sha256"} <= set(init):
        raise ValueError(f"{where}: give {{graph: models/NAME.onnx, sha256: HEX}}, not {init!r}")
    load_unet_from_onnx(unet, init["graph"], init["sha256"])


def finished_weights(path: Path, device) -> dict | None:
    """A stage's weights by module (the EMA, where the stage keeps one), or None while the stage
    is still in training (its checkpoint then holds the raw weights of an epoch in progress)."""
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: run the stage that makes it first")
    st = torch.load(path, map_location=device, weights_only=True)
    return st["modules"] if st["done"] else None


def _load_modules(path: Path, modules: dict, device):
    weights = finished_weights(path, device)
    if weights is None:
        raise RuntimeError(f"{path} is still in training: run its stage to the end first")
    for k, m in modules.items():
        m.load_state_dict(weights[k])


# ----------------------------------------------------------------------------- command line

def add_arguments(parser):
    parser.add_argument("recipe", help="a recipe YAML (models/recipes/*.yaml)")
    parser.add_argument("--run-dir", default=None, help="checkpoint folder (default runs/<recipe name>)")
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES,
                        help="stages to run (earlier stages' checkpoints must exist)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--no-progress", action="store_true")


def run(args):
    cfg = load_recipe(args.recipe)
    if cfg.get("kind") == "classifier":
        from diffsem import models_dir
        from diffsem.nn.classifier import train_classifier
        out = Path(args.run_dir or models_dir())  # the classifier ships as models/classifier.pt + card
        train_classifier(cfg, out, str(pick_device(args.device)))
        return 0
    run_dir = Path(args.run_dir or f"runs/{cfg['name']}")
    device = pick_device(args.device)
    print(f"training {cfg['name']} on {hardware_string(device)} -> {run_dir}")
    train_recipe(cfg, run_dir, device, stages=args.stages, progress=not args.no_progress)
    print(f"done: {run_dir} (export with: diffsem export {args.recipe})")
    return 0
