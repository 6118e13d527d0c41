"""Running the exported models: ONNX Runtime models with provider selection (`onnx_model`,
re-exported here: `runtime.OnnxModel`, `runtime.ProviderUnavailable`, ...), model cards and
their checks (`cards`), the file names of the shipped models (`naming`: the one place that
knows them), and the batching inference workers and frame encoders/decoders the blocks run
(`inference`). No torch here."""
from diffsem.runtime.onnx_model import (  # noqa: F401 (the runtime's API)
    PROVIDERS, AUTO_ORDER, ModelMismatch, ProviderUnavailable, InputError, default_cache_dir,
    available_providers, resolve_providers, OnnxModel,
)
