"""The trained networks of a training run folder (runs/k128: summary.json + one checkpoint per
stage) as eval-mode torch modules, and the diffusion decoder built from them: what export and
the torch backend of the schemes load."""
from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def torch_modules(run_dir, device="cpu"):
    """Load the trained networks of a run folder: encoder, decoder, ablation decoder, teacher and
    student U-Nets (those whose stage has finished). Returns (cfg, dict of eval-mode modules).

    A stage still in training is left out (its checkpoint holds the raw weights of an epoch in
    progress, not the EMA the finished stage keeps), and said so; the codec must be finished."""
    from diffsem.nn.train import build_basis, build_decoder, build_encoder, build_unet, finished_weights
    run_dir = Path(run_dir)
    cfg = __import__("json").loads((run_dir / "summary.json").read_text())["recipe"]

    def finished(stage):
        weights = finished_weights(run_dir / f"{stage}.pt", device)
        if weights is None:
            log.info("%s/%s.pt is still in training: not loaded", run_dir, stage)
        return weights

    mods = {}
    jscc = finished("jscc")
    if jscc is None:
        raise ValueError(f"{run_dir}/jscc.pt is still in training: finish it (diffsem train) before using the run")
    basis = build_basis(cfg, fitted=False)  # hybrid codecs carry their basis in the checkpoint
    mods["encoder"] = build_encoder(cfg, basis)
    mods["encoder"].load_state_dict(jscc["encoder"])
    mods["decoder"] = build_decoder(cfg, basis=basis)
    mods["decoder"].load_state_dict(jscc["decoder"])
    if (run_dir / "ablation.pt").exists() and (ablation := finished("ablation")) is not None:
        mods["decoder_nonv"] = build_decoder(cfg, use_noise_var=False, basis=basis)
        mods["decoder_nonv"].load_state_dict(ablation["decoder"])
    for stage in ["teacher"] + [f"distill_s{n}" for n in cfg["distill"]["rounds"]]:
        if (run_dir / f"{stage}.pt").exists() and (unet := finished(stage)) is not None:
            mods[stage] = build_unet(cfg)
            mods[stage].load_state_dict(unet["unet"])
    for m in mods.values():
        m.to(device).eval().requires_grad_(False)
    fit_power_map(mods)
    return cfg, mods


POWER_FIT_IMAGES = 1000


def fit_power_map(mods):
    """Fit the encoder's SnrPowerMap (hybrid codecs) on the first training images and copy it
    into every decoder, so the exported graphs meet unit average power at each SNR."""
    import numpy as np
    import torch

    from diffsem import data
    enc = mods["encoder"]
    if not hasattr(enc, "snr_map"):
        return
    device = next(enc.parameters()).device
    images = torch.from_numpy(np.ascontiguousarray(data.load("train")[0][:POWER_FIT_IMAGES])).to(device)
    enc.snr_map.fit(enc, images)
    for name in ("decoder", "decoder_nonv"):
        if name in mods:
            mods[name].snr_map.load_from(enc.snr_map)


def build_diffusion_decoder(cfg, mods, name, steps):
    from diffsem.nn.diffusion import DiffusionDecoder
    unet = mods["teacher"] if name == "teacher" else mods[f"distill_s{steps}"]
    return DiffusionDecoder(mods["decoder"], unet, steps, cfg["teacher"]["source_sigma"]).eval()


def load_unet_from_onnx(unet, path, sha256: str):
    """Set `unet`'s weights to the U-Net inside an exported teacher or student graph
    (`diffsem export` keeps parameter names under `unet.`; the exporter folds each GroupNorm's
    affine into the Mul and Add after its InstanceNormalization, found by the scope of the first
    call `/unet/<module>/Mul|Add`, and shares equal constants through Identity nodes). `sha256`
    pins the file: a recipe that starts from a shipped graph keeps naming the same weights after
    that graph is replaced."""
    import onnx
    import torch
    from onnx import numpy_helper

    from diffsem.runtime.cards import sha256_file
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} missing (a recipe's init graph; `git log -- {path}` finds the version it pins)")
    digest = sha256_file(path)
    if digest != sha256:
        raise ValueError(f"{path}: sha256 {digest[:12]}… is not the pinned {sha256[:12]}…: the recipe starts from "
                         f"another version of this file (`git log -- {path}` finds it)")
    graph = onnx.load(str(path)).graph
    arrays = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in arrays:
            arrays[node.output[0]] = arrays[node.input[0]]
    wanted = unet.state_dict().keys()
    state = {name.removeprefix("unet."): value for name, value in arrays.items()
             if name.startswith("unet.") and name.removeprefix("unet.") in wanted}
    for node in graph.node:
        scope, _, op = node.name.rpartition("/")
        if scope.startswith("/unet/") and op in ("Mul", "Add"):
            key = scope[len("/unet/"):].replace("/", ".") + (".weight" if op == "Mul" else ".bias")
            folded = [arrays[i] for i in node.input if i in arrays and not i.startswith("unet.")]
            if key in wanted and len(folded) == 1:
                state[key] = folded[0].reshape(-1)
    missing = sorted(set(wanted) - set(state))
    if missing:
        raise ValueError(f"{path}: no weights for {missing[:4]}{'…' if len(missing) > 4 else ''} "
                         "(not a graph of this U-Net)")
    unet.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()}, strict=True)
    return unet
