"""The shipped models by name: which file a model card of a role, k and step count lives in,
and the sampling temperature a card asks for. The one place that knows the file names
(encoder_k128.json, deepjscc_k128.json, teacher_k128.json, student_k128_s2.json, ...): export
writes them, the schemes, the blocks and the apps read them.
"""
from __future__ import annotations

from pathlib import Path

from diffsem import models_dir

TEACHER_STEPS = 32
STUDENT_STEPS = (1, 2, 4)
# Scale of the sampler's source noise (the perception-distortion knob). 1.0 samples the learned
# posterior: sharpest, 1.5-3 dB below DeepJSCC's PSNR; 0 is a deterministic refiner. Every
# shipped teacher/student card sets its own `default_temperature`, chosen on the validation split
# by `diffsem calibrate` (diffsem.nn.calibration: the sharpest within a 0.8 dB PSNR budget against
# DeepJSCC); this is the fallback for a card without one.
DEFAULT_TEMPERATURE = 0.9
ROLES = ("encoder", "deepjscc", "deepjscc_nonv", "teacher", "student")
ALIASES = {"deepjscc_decoder": "deepjscc", "diffusion": "student"}  # card roles / decoder modes


def artifact_name(role: str, k: int, steps: int | None = None) -> str:
    """File stem of a shipped model: encoder_k128, deepjscc_k128, deepjscc_nonv_k128,
    teacher_k128, student_k128_s2 (a card's role "deepjscc_decoder" and the decoder mode
    "diffusion" name the DeepJSCC decoder and the student)."""
    role = ALIASES.get(role, role)
    if role == "student":
        if steps not in STUDENT_STEPS:
            raise ValueError(f"diffusion decoder steps must be one of {STUDENT_STEPS}, got {steps!r}")
        return f"student_k{k}_s{steps}"
    if role not in ROLES:
        raise ValueError(f"unknown model role {role!r}")
    return f"{role}_k{k}"


def card_path(role: str, k: int, steps: int | None = None, folder=None) -> Path:
    """The card of a shipped model in `folder` (default: diffsem.models_dir())."""
    return Path(folder or models_dir()) / f"{artifact_name(role, k, steps)}.json"


def resolve_card(card: str | None, role: str, k: int, steps: int | None = None, models_dir=None) -> Path:
    """The card to load: `card` if given (a path, or a name in models_dir), else the shipped name."""
    from diffsem import models_dir as default_models_dir

    folder = Path(models_dir) if models_dir else default_models_dir()
    if card:
        path = Path(card)
        if path.suffix != ".json":
            path = path.with_suffix(".json")
        if not path.is_absolute() and not path.exists():
            path = folder / path.name
        return path
    return card_path(role, k, steps, folder)


def temperature_of_card(card: dict) -> float:
    """A card's `default_temperature`, DEFAULT_TEMPERATURE when it has none."""
    value = card.get("default_temperature")
    return DEFAULT_TEMPERATURE if value is None else float(value)


def card_temperature(name: str, k: int, steps: int | None = None, folder=None) -> float:
    """The sampling temperature the shipped card of a diffusion decoder asks for
    (temperature_of_card), DEFAULT_TEMPERATURE when the card does not exist."""
    from diffsem.runtime.cards import CardError, load_card
    if name == "teacher":
        steps = steps or TEACHER_STEPS
    try:
        card = load_card(card_path(name, k, steps, folder))
    except (CardError, ValueError):  # no such card (ValueError: no such student)
        return DEFAULT_TEMPERATURE
    return temperature_of_card(card)
