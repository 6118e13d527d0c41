"""Model cards: one JSON file per shipped artifact in models/ (what it is, how it was made, its
I/O contract and the sha256 of the file), checked before anything runs the model.

Schema (keys every card has; tools may add more)::

    {"name": "student_k128_s2", "role": "student", "k": 128, "steps": 2,
     "file": "student_k128_s2.onnx", "sha256": "<hex>", "bytes": 123456,
     "inputs":  [{"name": "symbols", "shape": ["batch", 128, 2], "dtype": "float32", "doc": "..."}],
     "outputs": [{"name": "image", "shape": ["batch", 1, 28, 28], "dtype": "float32", "doc": "..."}],
     "opset": 17, "data": "...", "recipe": "models/recipes/....yaml", "seed": 0,
     "training": {"hardware": "...", "time_s": 0.0}, "parity": {"max_abs_err": 1e-6},
     "metrics": [<rows as printed by `diffsem eval`>]}

`file` is relative to the card's folder. In shapes, the string "batch" names the dynamic batch
axis; every other axis is a fixed int. `inputs`/`outputs`/`opset` describe ONNX files only
(a torch state_dict card leaves them empty / null).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

ROLES = ("encoder", "deepjscc_decoder", "teacher", "student", "classifier")
DECODER_ROLES = ("deepjscc_decoder", "teacher", "student")
REQUIRED_KEYS = ("name", "role", "file", "sha256", "bytes")
BATCH = "batch"

# ONNX TensorProto element type -> numpy dtype name (the ones a card may name).
_ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64",
                9: "bool", 10: "float16", 11: "float64", 16: "bfloat16"}


class CardError(ValueError):
    """A model card is missing, unreadable, incomplete, or does not match its model file."""


class ModelFileMissing(CardError, FileNotFoundError):
    pass


class ChecksumMismatch(CardError):
    pass


def _show(path: Path) -> str:
    """A path as the user typed it would look: relative to the working directory when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def sha256_file(path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def write_card(path, card: dict) -> Path:
    """Write `card` as indented JSON, atomically (a reader never sees half a card)."""
    path = Path(path)
    missing = [k for k in REQUIRED_KEYS if k not in card]
    if missing:
        raise CardError(f"{_show(path)}: card lacks required keys {missing}")
    if card["role"] not in ROLES:
        raise CardError(f"{_show(path)}: role {card['role']!r} is not one of {ROLES}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; a card is as readable as any other file
        with os.fdopen(fd, "w") as f:
            json.dump(card, f, indent=2, allow_nan=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_card(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ModelFileMissing(f"{_show(path)}: model card not found")
    try:
        card = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CardError(f"{_show(path)}: not a readable JSON model card ({exc})") from exc
    if not isinstance(card, dict):
        raise CardError(f"{_show(path)}: a model card must be a JSON object, got {type(card).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in card]
    if missing:
        raise CardError(f"{_show(path)}: card lacks required keys {missing}")
    temperature = card.get("default_temperature")
    if temperature is not None and (isinstance(temperature, bool) or not isinstance(temperature, (int, float))
                                    or not 0.0 <= temperature <= 10.0):
        raise CardError(f"{_show(path)}: default_temperature must be a number in 0..10, got {temperature!r}")
    return card


def model_path(card_path, card: dict | None = None) -> Path:
    """The artifact a card describes (its `file`, relative to the card's folder)."""
    card_path = Path(card_path)
    card = load_card(card_path) if card is None else card
    return card_path.parent / card["file"]


def verify_card(card_path) -> Path:
    """Check the card's file exists and has the recorded size and sha256; return its path.

    Raises ModelFileMissing or ChecksumMismatch (both CardError) with a message naming the file,
    what differs, and what to do.
    """
    card = load_card(card_path)
    path = model_path(card_path, card)
    if not path.is_file():
        raise ModelFileMissing(
            f"{_show(path)}: model file named by card {_show(card_path)} not found; "
            f"re-export it or restore it (git checkout / reinstall)")
    digest = sha256_file(path)
    if digest != card["sha256"]:
        size = path.stat().st_size
        size_note = f", {size} bytes vs {card['bytes']} in the card" if size != card["bytes"] else ""
        raise ChecksumMismatch(
            f"{_show(path)}: sha256 mismatch (file {digest[:12]}…, card {str(card['sha256'])[:12]}…{size_note}): "
            f"the file was modified or corrupted; re-export or restore it")
    return path


def describe_onnx(path) -> tuple[list[dict], list[dict], int]:
    """(inputs, outputs, opset) of an ONNX file in card form; the batch axis becomes "batch".

    Used by export tools to fill a card from the graph they just wrote, so the card cannot drift
    from the file. Symbolic input axes are the batch axis. Output axes are taken from ONNX shape
    inference; an output axis it leaves symbolic (an exporter's Reshape to [-1, ...]) is resolved
    by running the model at batch 1 and 2: an axis that follows the batch is "batch", one that
    does not is its fixed size. `doc` strings are left empty for the caller to fill.
    """
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - a graph shape inference cannot follow keeps its declared shapes
        pass
    initializers = {t.name for t in model.graph.initializer}
    graph_inputs = [v for v in model.graph.input if v.name not in initializers]
    batch_names = {d.dim_param for v in graph_inputs for d in v.type.tensor_type.shape.dim
                   if not d.HasField("dim_value")}

    def spec(value_info) -> dict:
        tensor = value_info.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else (BATCH if d.dim_param in batch_names else None)
                 for d in tensor.shape.dim]
        return {"name": value_info.name, "shape": shape,
                "dtype": _ONNX_DTYPES.get(tensor.elem_type, f"onnx:{tensor.elem_type}"), "doc": ""}

    inputs = [spec(v) for v in graph_inputs]
    for entry in inputs:
        entry["shape"] = [BATCH if d is None else d for d in entry["shape"]]
    outputs = [spec(v) for v in model.graph.output]
    if any(d is None for o in outputs for d in o["shape"]):
        _probe_output_shapes(path, inputs, outputs)
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return inputs, outputs, int(opset)


def _probe_output_shapes(path, inputs: list[dict], outputs: list[dict]) -> None:
    """Fill unknown output axes by running the model at batch 1 and 2 on zero inputs."""
    import numpy as np
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    runs = []
    for batch in (1, 2):
        feeds = {i["name"]: np.zeros([batch if d == BATCH else d for d in i["shape"]], dtype=i["dtype"])
                 for i in inputs}
        runs.append(sess.run([o["name"] for o in outputs], feeds))
    for o, one, two in zip(outputs, *runs):
        o["shape"] = [d if d is not None else (BATCH if a != b else int(a))
                      for d, a, b in zip(o["shape"], one.shape, two.shape)]


def make_card(artifact, *, name: str, role: str, k: int | None = None, steps: int | None = None,
              docs: dict | None = None, **extra) -> dict:
    """A card for `artifact` with file, sha256, bytes and (for .onnx) the I/O spec read from the graph.

    `docs` maps input/output names to their `doc` text; `extra` adds the other keys (data,
    recipe, seed, training, parity, metrics). Write it with write_card next to the artifact.
    """
    artifact = Path(artifact)
    card = {"name": name, "role": role, "k": k, "steps": steps, "file": artifact.name,
            "sha256": sha256_file(artifact), "bytes": artifact.stat().st_size,
            "inputs": [], "outputs": [], "opset": None}
    if artifact.suffix == ".onnx":
        inputs, outputs, opset = describe_onnx(artifact)
        for entry in inputs + outputs:
            entry["doc"] = (docs or {}).get(entry["name"], "")
        card.update(inputs=inputs, outputs=outputs, opset=opset)
    card.update(extra)
    return card


def find_cards(folder, roles=None) -> list[Path]:
    """Card files (*.json that load as cards) in `folder`, sorted by name; optionally only `roles`."""
    found = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            card = load_card(path)
        except CardError:
            continue
        if roles is None or card.get("role") in roles:
            found.append(path)
    return found
