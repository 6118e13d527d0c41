"""What a codec recipe (models/recipes/*.yaml, `diffsem train`) may hold: every section's keys
and their types, checked before anything is trained or written. A typo in an optional key would
otherwise be replaced by its default without a word, and one in the distillation section would
surface only after the codec and the teacher had trained for hours.

check(cfg, where) raises RecipeError naming the key (and the nearest known one) or the type."""
from __future__ import annotations

import difflib

NUMBER = (int, float)


class RecipeError(ValueError):
    """A recipe that cannot train: one sentence naming the key."""


def _stage(**extra):
    """The keys every training stage reads (diffsem.nn.train's stage loop), plus its own."""
    return {"epochs": int, "batch": int, "lr": NUMBER, "weight_decay": NUMBER, "ema": NUMBER, **extra}


IMPAIRMENTS = {"probability": NUMBER, "max_fraction": NUMBER, "sir_db": list, "kinds": list}
CHANNEL = {"snr_min": NUMBER, "snr_max": NUMBER, "kinds": list, "estimated_csi_fraction": NUMBER,
           "impairments": (type(None), IMPAIRMENTS)}
SCHEMA = {
    "name": str, "k": int, "seed": int, "description": str, "kind": str,
    "data": {"limit": int},
    "channel": CHANNEL,
    "jscc": _stage(arch=str, loss=str, width=int, init=str, train=str),
    "ablation": _stage(channel=CHANNEL),
    "teacher": _stage(width=int, source_sigma=NUMBER, steps=int, knob=bool, symbols=bool,
                      init={"graph": str, "sha256": str}),
    "distill": _stage(rounds=list, init_epochs=int, init_lr=NUMBER, init=dict),
    "export": {"students": list},
    "recipe_path": str,
}
REQUIRED = {"": ("k", "seed", "channel", "jscc", "teacher", "distill"),  # of a codec recipe
            "jscc": ("epochs", "batch", "lr"), "teacher": ("epochs", "batch", "lr", "source_sigma", "steps"),
            "distill": ("rounds", "epochs", "batch", "lr")}


def _type_name(kind) -> str:
    if isinstance(kind, dict):
        return "a mapping"
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list",
             dict: "a mapping", type(None): "null"}
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in kinds))


def _fits(value, kind) -> bool:
    if isinstance(kind, dict):
        return isinstance(value, dict)
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:  # true is not an integer here
        return False
    return any(isinstance(value, k) if not isinstance(k, dict) else isinstance(value, dict) for k in kinds)


def _check(section: dict, schema: dict, path: str, where: str, required: dict) -> None:
    for key, value in section.items():
        name = f"{path}{key}"
        if key not in schema:
            near = difflib.get_close_matches(str(key), [str(k) for k in schema], n=1)
            hint = f" (did you mean {path}{near[0]}?)" if near else f" (known: {', '.join(map(str, schema))})"
            raise RecipeError(f"recipe {where}: {name} is not a known key{hint}")
        kind = schema[key]
        if not _fits(value, kind):
            raise RecipeError(f"recipe {where}: {name} must be {_type_name(kind)}, got {value!r}")
        nested = kind if isinstance(kind, dict) else \
            next((k for k in kind if isinstance(k, dict)), None) if isinstance(kind, tuple) else None
        if nested is not None and isinstance(value, dict):
            _check(value, nested, f"{name}.", where, required)
    for key in required.get(path.rstrip("."), ()):
        if key not in section:
            raise RecipeError(f"recipe {where}: {path}{key} is missing")


def _classifier_schema() -> dict:
    """A classifier recipe (kind: classifier): diffsem.nn.classifier.DEFAULTS' keys, typed by their
    defaults, and the keys that do not change the weights."""
    from diffsem.nn.classifier import _META_KEYS, DEFAULTS

    def kind_of(default):
        return NUMBER if isinstance(default, float) else (int, type(None)) if default is None else type(default)
    return {**{k: kind_of(v) for k, v in DEFAULTS.items()}, **{k: str for k in _META_KEYS}}


def check(cfg, where: str) -> dict:
    """cfg (a parsed recipe) if every key is known and of its type, else RecipeError."""
    if not isinstance(cfg, dict):
        raise RecipeError(f"recipe {where}: not a mapping of sections (got {type(cfg).__name__})")
    if cfg.get("kind") == "classifier":
        _check(cfg, _classifier_schema(), "", where, {})
    else:
        _check(cfg, SCHEMA, "", where, REQUIRED)
    return cfg
