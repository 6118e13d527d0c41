"""`diffsem export <recipe>`: ONNX graphs + model cards from a finished training run.

One static-shape graph per artifact (only the batch axis is dynamic), named as the model
contract of docs/design/conventions.md says:
  encoder_k{k}         image [B,1,28,28], snr_db [B] -> symbols [B,k,2]
  deepjscc_k{k}        symbols [B,k,2], snr_db [B], noise_var [B,k] -> image [B,1,28,28]
  deepjscc_nonv_k{k}   the ablation decoder (ignores noise_var beyond the SNR), same I/O
  teacher_k{k}         + noise [B,1,28,28] ~ N(0,1): the 32-step sampler unrolled
  student_k{k}_s{n}    + noise: the distilled n-step sampler unrolled (n = 1, 2, 4)
Each export is checked against PyTorch on real test inputs (max |error| written to the card).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from diffsem import data, models_dir
from diffsem.runtime.cards import make_card, write_card
from diffsem.runtime.flops import count_flops
from diffsem.channel import transmit
from diffsem.nn.runs import build_diffusion_decoder, torch_modules
from diffsem.runtime.naming import DEFAULT_TEMPERATURE, TEACHER_STEPS, artifact_name

OPSET = 17
PARITY_TOL = 1e-4
DOCS = {
    "image": "grayscale image, [0, 1], 28x28",
    "snr_db": "average Es/N0 of the channel in dB (docs/design/conventions.md)",
    "symbols": "complex channel symbols as (re, im), unit average power per symbol; at the decoder, "
               "after zero-forcing equalisation",
    "noise_var": "per-symbol noise variance after equalisation (sigma^2 / |H|^2 of the symbol's subcarrier)",
    "noise": "standard normal source noise of the sampler (scale it by a temperature <= 1 for less diversity)",
}


def _export(module, inputs: dict, output: str, path: Path):
    names = list(inputs)
    torch.onnx.export(module, tuple(inputs.values()), str(path), input_names=names, output_names=[output],
                      dynamic_axes={n: {0: "batch"} for n in names + [output]}, opset_version=OPSET,
                      dynamo=False)


def _parity(module, inputs: dict, path: Path) -> float:
    """Max |ONNX - PyTorch| over the sample batch and a batch of one (the batch axis must stay dynamic)."""
    import onnxruntime as ort
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    err = 0.0
    for batch in (inputs, {k: v[:1] for k, v in inputs.items()}):
        with torch.no_grad():
            want = module(*batch.values()).numpy()
        got = sess.run(None, {k: v.numpy() for k, v in batch.items()})[0]
        if got.shape != want.shape:
            raise RuntimeError(f"{path}: ONNX output shape {got.shape} != PyTorch {want.shape}")
        err = max(err, float(np.abs(got - want).max()))
    return err


def sample_inputs(enc, k: int, n: int = 16, seed: int = 0) -> dict:
    """Realistic decoder inputs: test images sent through a selective channel at mixed SNRs."""
    g = torch.Generator().manual_seed(seed)
    images = torch.from_numpy(data.load("test")[0][:n].copy())
    snr = torch.linspace(-5, 25, n)
    with torch.no_grad():
        s_hat, nv = transmit(enc(images, snr), snr, "selective", "estimated", generator=g)
    return {"image": images, "snr_db": snr, "symbols": s_hat, "noise_var": nv,
            "noise": torch.randn(n, 1, 28, 28, generator=g)}


EXPORT_ROLES = ("encoder", "deepjscc", "deepjscc_nonv", "teacher", "student")


def export_run(run_dir, out_dir=None, recipe_path: str = "", students=(1, 2, 4), only=None) -> list[Path]:
    """Export a run's networks; `only`: a subset of EXPORT_ROLES (e.g. after retraining one stage)."""
    run_dir = Path(run_dir)
    if only and not set(only) <= set(EXPORT_ROLES):
        raise ValueError(f"unknown roles {sorted(set(only) - set(EXPORT_ROLES))}: choose from {EXPORT_ROLES}")
    out_dir = Path(out_dir or models_dir())
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg, mods = torch_modules(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    k = cfg["k"]
    ex = sample_inputs(mods["encoder"], k)
    stages = summary.get("stages", {})

    def training(*stage_names):
        return {"hardware": summary.get("hardware"),
                "time_s": round(sum(stages.get(s, {}).get("time_s", 0.0) for s in stage_names), 1),
                "stages": list(stage_names)}

    teacher_steps = cfg["teacher"].get("steps", TEACHER_STEPS)
    distill_stages = [f"distill_s{n}" for n in cfg["distill"]["rounds"]]
    # (role, steps, a constructor of the module, inputs, output, training); a run trained only up to
    # some stage (e.g. `--stages jscc`) exports what it has
    jobs = [("encoder", None, lambda: mods["encoder"], ["image", "snr_db"], "symbols", training("jscc")),
            ("deepjscc_decoder", None, lambda: mods["decoder"], ["symbols", "snr_db", "noise_var"], "image",
             training("jscc"))]
    if "decoder_nonv" in mods:
        jobs.append(("deepjscc_nonv", None, lambda: mods["decoder_nonv"], ["symbols", "snr_db", "noise_var"],
                     "image", training("jscc", "ablation")))
    if "teacher" in mods:
        jobs.append(("teacher", teacher_steps, lambda: build_diffusion_decoder(cfg, mods, "teacher", teacher_steps),
                     ["symbols", "snr_db", "noise_var", "noise"], "image", training("jscc", "teacher")))
    for n in students:
        if f"distill_s{n}" not in mods:
            continue
        upto = distill_stages[:distill_stages.index(f"distill_s{n}") + 1]
        jobs.append(("student", n, lambda n=n: build_diffusion_decoder(cfg, mods, "student", n),
                     ["symbols", "snr_db", "noise_var", "noise"], "image", training("jscc", "teacher", *upto)))
    def public(role):  # the name users and artifacts know a role by
        return {"deepjscc_decoder": "deepjscc"}.get(role, role)

    missing = set(only or ()) - {public(job[0]) for job in jobs}
    if missing:
        raise FileNotFoundError(f"{run_dir} has no trained {sorted(missing)} (run the stages that make them, and let them finish)")
    written = []
    for role, steps, make_module, in_names, out_name, train_info in jobs:
        if only and public(role) not in only:
            continue
        module = make_module()
        name = artifact_name(public(role), k, steps)
        path = out_dir / f"{name}.onnx"
        inputs = {n: ex[n] for n in in_names}
        t0 = time.time()
        _export(module.eval(), inputs, out_name, path)
        err = _parity(module, inputs, path)
        if not err <= PARITY_TOL:
            raise RuntimeError(f"{path}: ONNX output differs from PyTorch by {err:.2e} (> {PARITY_TOL})")
        card_role = "deepjscc_decoder" if role == "deepjscc_nonv" else role
        card = make_card(path, name=name, role=card_role, k=k, steps=steps, docs=DOCS,
                         data="Fashion-MNIST train split (55k; Debian dataset-fashion-mnist), "
                              "channels awgn/rayleigh/selective with ZF, SNR -5..25 dB",
                         recipe=recipe_path or cfg.get("recipe_path", ""), seed=cfg["seed"],
                         training=train_info, parity={"max_abs_err": err, "tolerance": PARITY_TOL},
                         uses_noise_var=role != "deepjscc_nonv",
                         source_sigma=cfg["teacher"]["source_sigma"] if steps else None,
                         default_temperature=DEFAULT_TEMPERATURE if steps else None,
                         metrics=[])
        card["flops_per_image"] = count_flops(path)[0]  # what `diffsem bench decoder` counts (load-independent)
        old = out_dir / f"{name}.json"
        previous = json.loads(old.read_text()) if old.exists() else {}
        same_recipe = Path(previous.get("recipe") or "").name == Path(card["recipe"] or "").name
        if previous and same_recipe:  # keep what was measured and calibrated for this recipe
            card["metrics"] = previous.get("metrics", [])
            for key in ("default_temperature", "temperature_calibration"):
                if previous.get(key) is not None and steps:
                    card[key] = previous[key]
        elif previous:
            print(f"{old.name}: was {previous.get('recipe')}'s card; its evaluation rows and temperature are "
                  f"not carried over (`diffsem calibrate` sets one)")
        write_card(old, card)
        written.append(path)
        print(f"{path.name}: {path.stat().st_size / 1e6:.2f} MB, parity {err:.1e}, {time.time() - t0:.1f} s")
    return written


def add_arguments(parser):
    parser.add_argument("recipe", help="the recipe the run was trained with (models/recipes/*.yaml)")
    parser.add_argument("--run-dir", default=None, help="default runs/<recipe name>")
    parser.add_argument("--out", default=None, help="default models/")
    parser.add_argument("--metrics", default=None,
                        help="a JSON-lines file of `diffsem eval` rows to copy into the matching cards")
    parser.add_argument("--only", nargs="+", choices=EXPORT_ROLES, default=None,
                        help="export only these models (default: all of the run)")


def run(args):
    from diffsem.nn.train import load_recipe
    cfg = load_recipe(args.recipe)
    export_run(args.run_dir or f"runs/{cfg['name']}", args.out, args.recipe,
               students=cfg.get("export", {}).get("students", (1, 2, 4)), only=args.only)
    if args.metrics:
        rows = [json.loads(line) for line in Path(args.metrics).read_text().splitlines() if line.strip()]
        print(f"{attach_metrics(args.out or models_dir(), rows)} evaluation rows copied into the cards")
    return 0


def attach_metrics(models_folder, rows) -> int:
    """Copy `diffsem eval` rows into the cards they describe (by scheme, k and steps)."""
    from diffsem.runtime.cards import find_cards, load_card
    n = 0
    for path in find_cards(models_folder):
        card = load_card(path)
        name = card["name"]
        mine = [r for r in rows if r.get("k") == card.get("k") and (
            (r["scheme"] == "student" and name == artifact_name("student", r["k"], r["steps"]))
            or (r["scheme"] in ("teacher", "deepjscc", "deepjscc_nonv") and name == artifact_name(r["scheme"], r["k"])))]
        if mine:
            card["metrics"] = mine
            write_card(path, card)
            n += len(mine)
    return n
