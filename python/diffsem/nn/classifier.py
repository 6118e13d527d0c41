"""The in-project Fashion-MNIST classifier behind the semantic metrics (accuracy on
reconstructions, FID-FMNIST on its penultimate features).

A small CNN (conv32-pool-conv64-pool, a 128-unit feature layer, a linear head) trained from
models/recipes/classifier.yaml in a few minutes on a 2-core CPU. Shipped as models/classifier.pt
(state_dict) with its card models/classifier.json (clean test accuracy in `metrics`), plus the same
network as models/classifier.onnx (card classifier_onnx.json) for consumers without torch.

    diffsem train models/recipes/classifier.yaml      # -> train_classifier(cfg, out_dir, device)
    net = load_classifier()                           # verified against its card, eval mode
    logits, features = net.logits_and_features(x)     # x [B,1,28,28] float32 in [0,1]

A second network from the same code, models/classifier_robust.pt (recipe classifier_robust.yaml),
is trained on images blurred and noised at random (`augment`): its accuracy on a reconstruction
cannot be bought by adding noise or by sharpening, so a perceptual claim is also scored with it
(`diffsem measure controls`). FID-FMNIST stays on the plain classifier's features.
"""
from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from diffsem import data as fmnist
from diffsem.runtime.cards import load_card, make_card, verify_card, write_card

log = logging.getLogger("diffsem.nn.classifier")

CARD_NAME = "classifier.json"
ROBUST = "classifier_robust"
DEFAULTS = {"name": "classifier", "seed": 0, "epochs": 8, "batch": 128, "lr": 2e-3, "weight_decay": 1e-4,
            "widths": [32, 64], "features": 128, "dropout": 0.3, "hflip": True, "threads": 2,
            "export_onnx": True, "opset": 17, "train_subset": None,
            # augmentation (0 = off): each image is blurred with probability augment_p (Gaussian, sigma
            # uniform in [0, blur_sigma_max] pixels), then noised with probability augment_p (white,
            # std uniform in [0, noise_std_max]), then clipped to [0, 1]
            "augment_p": 0.0, "blur_sigma_max": 0.0, "noise_std_max": 0.0}


class Classifier(nn.Module):
    def __init__(self, widths=(32, 64), features: int = 128, dropout: float = 0.3, n_classes: int = 10):
        super().__init__()
        c1, c2 = widths
        self.arch = {"widths": list(widths), "features": features, "dropout": dropout}
        self.conv = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1, bias=False), nn.BatchNorm2d(c1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1, bias=False), nn.BatchNorm2d(c2), nn.ReLU(), nn.MaxPool2d(2))
        self.fc = nn.Linear(c2 * 7 * 7, features)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(features, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations [B, features] (after ReLU): the space FID-FMNIST is measured in."""
        return F.relu(self.fc(self.conv(x * 2 - 1).flatten(1)))

    def logits_and_features(self, x: torch.Tensor):
        f = self.features(x)
        return self.head(self.drop(f)), f

    def forward(self, x):
        return self.logits_and_features(x)[0]


class _Export(nn.Module):
    """ONNX view: image -> (logits, features)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, image):
        return self.net.logits_and_features(image)


# Keys a recipe may carry that do not change the trained weights (so a checkpoint stays resumable).
_META_KEYS = ("kind", "description", "recipe", "recipe_path", "checkpoint_dir")


def _config(cfg: dict) -> dict:
    unknown = set(cfg) - set(DEFAULTS) - set(_META_KEYS)
    if unknown:
        raise ValueError(f"classifier recipe: unknown keys {sorted(unknown)} (known: {sorted(DEFAULTS)})")
    return {**DEFAULTS, **{k: v for k, v in cfg.items() if k in DEFAULTS}}


@torch.no_grad()
def accuracy(net: nn.Module, images: np.ndarray, labels: np.ndarray, device="cpu", batch: int = 1000) -> float:
    net.eval()
    correct = 0
    for i in range(0, len(images), batch):
        x = torch.from_numpy(images[i:i + batch]).to(device)
        correct += int((net(x).argmax(1).cpu().numpy() == labels[i:i + batch]).sum())
    return correct / max(len(images), 1)


def _blur_batch(x: torch.Tensor, sigma: torch.Tensor, radius: int = 4) -> torch.Tensor:
    """Gaussian blur of [B,1,H,W] with a per-image standard deviation sigma [B] (0 = unchanged),
    edges reflected; one separable depthwise convolution over the batch."""
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    s = sigma.clamp_min(1e-3)[:, None]
    w = torch.exp(-0.5 * (t[None, :] / s) ** 2)
    w = w / w.sum(1, keepdim=True)                                       # [B, 2r+1]; sigma -> 0: a delta
    b, _, h, wd = x.shape
    y = F.pad(x.reshape(1, b, h, wd), (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, w[:, None, None, :], groups=b)                       # along the width
    y = F.conv2d(y, w[:, None, :, None], groups=b)                       # along the height
    return y.reshape(b, 1, h, wd)


def augment(x: torch.Tensor, cfg: dict, generator: torch.Generator | None = None) -> torch.Tensor:
    """The recipe's blur-and-noise augmentation of a training batch [B,1,H,W] in [0, 1]."""
    p = float(cfg["augment_p"])
    if p <= 0 or (cfg["blur_sigma_max"] <= 0 and cfg["noise_std_max"] <= 0):
        return x
    b = len(x)

    def draw(scale):
        on = torch.rand(b, generator=generator) < p
        return (torch.rand(b, generator=generator) * scale * on).to(x.device)

    if cfg["blur_sigma_max"] > 0:
        x = _blur_batch(x, draw(float(cfg["blur_sigma_max"])))
    if cfg["noise_std_max"] > 0:
        std = draw(float(cfg["noise_std_max"]))
        x = x + std[:, None, None, None] * torch.randn(x.shape, generator=generator).to(x.device)
    return x.clamp(0.0, 1.0)


def hardware_string(device: str) -> str:
    if str(device).startswith("cuda") and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (torch {torch.__version__})"
    from diffsem.runtime.onnx_model import cpu_name
    return f"{cpu_name()} ({os.cpu_count()} CPUs), {torch.get_num_threads()} torch threads (torch {torch.__version__})"


def train_classifier(cfg: dict, out_dir: Path, device: str = "cpu") -> dict:
    """Train the classifier from a recipe dict, write classifier.pt (+ .onnx) and cards in out_dir.

    Resumable: a checkpoint is written after every epoch to cfg["checkpoint_dir"] (default
    runs/checkpoints/ of the checkout, git-ignored) and picked up when the same recipe runs again.
    cfg["recipe"] or cfg["recipe_path"] (the recipe's path) is recorded in the card. Returns the
    card (also written to out_dir/classifier.json).
    """
    from diffsem import REPO_ROOT
    meta = {k: cfg[k] for k in _META_KEYS if k in cfg}
    cfg = _config(cfg)
    out_dir = Path(out_dir)
    ckpt_dir = Path(meta.get("checkpoint_dir") or REPO_ROOT / "runs" / "checkpoints")
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = ckpt_dir / f"{cfg['name']}.ckpt"
    if cfg["threads"] and not str(device).startswith("cuda"):
        torch.set_num_threads(int(cfg["threads"]))
    torch.manual_seed(cfg["seed"])

    x_train, y_train = fmnist.load("train")
    if cfg["train_subset"]:  # tiny configs (tests): the first N training images
        x_train, y_train = x_train[:cfg["train_subset"]], y_train[:cfg["train_subset"]]
    x_val, y_val = fmnist.load("val")
    x_test, y_test = fmnist.load("test")

    net = Classifier(cfg["widths"], cfg["features"], cfg["dropout"]).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    steps_per_epoch = -(-len(x_train) // cfg["batch"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"], total_steps=cfg["epochs"] * steps_per_epoch)
    start_epoch, history, elapsed = 0, [], 0.0
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=True)
        if {**DEFAULTS, **state["cfg"]} == cfg:  # keys added to DEFAULTS later keep old checkpoints usable
            net.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            sched.load_state_dict(state["sched"])
            start_epoch, history, elapsed = state["epoch"], state["history"], state["time_s"]
            log.info("resuming %s from epoch %d", ckpt_path, start_epoch)
        else:
            log.warning("%s was written by a different recipe; starting over", ckpt_path)

    try:
        from tqdm import tqdm
    except ImportError:  # progress bars are a nicety
        tqdm = None
    for epoch in range(start_epoch, cfg["epochs"]):
        t0 = time.perf_counter()
        net.train()
        order = np.random.default_rng(cfg["seed"] * 1000 + epoch).permutation(len(x_train))
        aug_rng = torch.Generator().manual_seed(cfg["seed"] * 1000 + epoch)  # per epoch: a resumed run draws alike
        batches = range(0, len(order), cfg["batch"])
        bar = tqdm(batches, desc=f"classifier epoch {epoch + 1}/{cfg['epochs']}", leave=False,
                   disable=not sys.stderr.isatty()) if tqdm else batches
        total = 0.0
        for i in bar:
            idx = order[i:i + cfg["batch"]]
            x = torch.from_numpy(x_train[idx]).to(device)
            if cfg["hflip"]:
                flip = torch.rand(len(idx), device=device) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            x = augment(x, cfg, aug_rng)
            loss = F.cross_entropy(net(x), torch.from_numpy(y_train[idx]).to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        elapsed += time.perf_counter() - t0
        val_acc = accuracy(net, x_val, y_val, device)
        history.append({"epoch": epoch + 1, "loss": round(total / len(order), 4), "val_accuracy": round(val_acc, 4)})
        log.info("classifier epoch %d: loss %.4f, val accuracy %.4f", epoch + 1, total / len(order), val_acc)
        torch.save({"cfg": cfg, "epoch": epoch + 1, "model": net.state_dict(), "opt": opt.state_dict(),
                    "sched": sched.state_dict(), "history": history, "time_s": elapsed}, ckpt_path)

    net.eval().cpu()
    test_acc = accuracy(net, x_test, y_test)
    pt_path = out_dir / f"{cfg['name']}.pt"
    torch.save({"arch": net.arch, "state_dict": net.state_dict()}, pt_path)
    spec_in = [{"name": "image", "shape": ["batch", 1, 28, 28], "dtype": "float32",
                "doc": "Fashion-MNIST image(s) in [0, 1]"}]
    spec_out = [{"name": "logits", "shape": ["batch", 10], "dtype": "float32",
                 "doc": "class scores (data.CLASSES order)"},
                {"name": "features", "shape": ["batch", cfg["features"]], "dtype": "float32",
                 "doc": "penultimate activations: the FID-FMNIST feature space"}]
    recipe = meta.get("recipe") or meta.get("recipe_path") or "models/recipes/classifier.yaml"
    common = {"data": "Fashion-MNIST (Debian dataset-fashion-mnist): train 55k / val 5k (last 5k of the train file) "
                      "/ test 10k",
              "recipe": str(recipe), "seed": cfg["seed"],
              "training": {"hardware": hardware_string(device), "time_s": round(elapsed, 1),
                           "time_note": "wall-clock seconds of the training epochs (machine possibly shared)",
                           "epochs": cfg["epochs"],
                           "history": history, "config": cfg},
              "metrics": [{"split": "test", "accuracy": round(test_acc, 4), "n": int(len(x_test))}]}
    card = make_card(pt_path, name=cfg["name"], role="classifier", **common)
    card.update(inputs=spec_in, outputs=spec_out, format="torch state_dict ({'arch', 'state_dict'})")
    write_card(out_dir / f"{cfg['name']}.json", card)

    if cfg["export_onnx"]:
        onnx_path = out_dir / f"{cfg['name']}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecation notice of the TorchScript exporter (dynamo needs onnxscript)
            # eval() on the wrapper: the exporter restores the wrapper's mode afterwards, recursively
            torch.onnx.export(_Export(net).eval(), (torch.zeros(2, 1, 28, 28),), str(onnx_path), input_names=["image"],
                              output_names=["logits", "features"], dynamo=False, opset_version=cfg["opset"],
                              dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}, "features": {0: "batch"}})
        parity = _onnx_parity(net, onnx_path, x_test[:256])
        docs = {s["name"]: s["doc"] for s in spec_in + spec_out}
        onnx_card = make_card(onnx_path, name=f"{cfg['name']}_onnx", role="classifier", docs=docs,
                              parity={"max_abs_err": parity, "against": "torch, 256 test images"}, **common)
        write_card(out_dir / f"{cfg['name']}_onnx.json", onnx_card)
    log.info("classifier: test accuracy %.4f (%d images), %.0f s training", test_acc, len(x_test), elapsed)
    return card


def _onnx_parity(net, onnx_path, images) -> float:
    import onnxruntime as ort

    net.eval()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    logits, feats = sess.run(["logits", "features"], {"image": images})
    with torch.no_grad():
        ref_logits, ref_feats = net.logits_and_features(torch.from_numpy(images))
    return float(max(np.abs(logits - ref_logits.numpy()).max(), np.abs(feats - ref_feats.numpy()).max()))


_loaded: dict = {}


def load_classifier(models_dir=None, device: str = "cpu", name: str = "classifier") -> Classifier:
    """A shipped classifier (models/<name>.pt: `classifier`, or ROBUST) after checking it against its
    card; eval mode."""
    from diffsem import models_dir as default_models_dir
    card_path = Path(models_dir or default_models_dir()) / f"{name}.json"
    key = (str(card_path.resolve()), str(device))
    if key not in _loaded:
        path = verify_card(card_path)
        blob = torch.load(path, map_location=device, weights_only=True)
        net = Classifier(**blob["arch"])
        net.load_state_dict(blob["state_dict"])
        _loaded[key] = net.to(device).eval()
    return _loaded[key]


def clean_accuracy(models_dir=None) -> float | None:
    """The shipped classifier's clean test accuracy, as written in its card."""
    from diffsem import models_dir as default_models_dir
    card = load_card(Path(models_dir or default_models_dir()) / CARD_NAME)
    return next((m["accuracy"] for m in card.get("metrics", []) if m.get("split") == "test"), None)
