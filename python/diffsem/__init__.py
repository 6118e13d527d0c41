"""gr-diffsem core library: generative semantic communication of images.

Plain Python (numpy, torch, onnxruntime); no GNU Radio import here, so everything in this
package is testable without a radio. The GNU Radio blocks in ``gnuradio.diffsem`` are thin
adapters over it.
"""
from pathlib import Path

__version__ = "0.1.0"

#: Repository root when running from a checkout (models/ and flowgraphs/ live there).
REPO_ROOT = Path(__file__).resolve().parents[2]


def models_dir() -> Path:
    """Folder of shipped models: $DIFFSEM_MODELS, else the installed share folder (found relative to
    this package from the install_paths.json CMake writes next to it: P/share/gr-diffsem/models
    for any prefix P), else the checkout's models/, else <sys.prefix>/share/gr-diffsem/models."""
    import json
    import os
    import sys
    env = os.environ.get("DIFFSEM_MODELS")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    marker = here / "install_paths.json"
    if marker.is_file():
        return (here / json.loads(marker.read_text())["models"]).resolve()
    local = REPO_ROOT / "models"
    if local.is_dir():
        return local
    return Path(sys.prefix) / "share" / "gr-diffsem" / "models"
