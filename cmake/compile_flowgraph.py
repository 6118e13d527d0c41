"""Build step: compile one flowgraph with grcc and make the generated script runnable from the
install prefix with no environment: its shebang names the runtime Python (-DDIFFSEM_PYTHON), and
a prologue puts the prefix's Python folder (relative to the script, so DESTDIR and --prefix
work) on sys.path before `from gnuradio import diffsem`.

    python compile_flowgraph.py GRC OUT_PY RUNTIME_PYTHON SITE_RELATIVE_TO_SCRIPT_DIR

A flowgraph whose blocks are not installed (gr-osmosdr, gr-uhd missing) is skipped with a
warning, so an optional radio package never breaks the build; its .grc is still installed.
"""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PROLOGUE = """\
# gr-diffsem install: this prefix's Python folder goes on sys.path (relative to this script)
import os as _os, sys as _sys
_site = _os.path.normpath(_os.path.join(_os.path.dirname(_os.path.realpath(__file__)), {rel!r}))
if _site not in _sys.path:
    _sys.path.insert(0, _site)
"""


def main(grc, out_py, python, site_rel):
    grc, out_py = Path(grc), Path(out_py)
    grcc = shutil.which("grcc")
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([grcc, "-o", tmp, str(grc)], capture_output=True, text=True,
                              env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
        generated = Path(tmp) / f"{grc.stem}.py"
        if proc.returncode != 0 or not generated.is_file():
            last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
            print(f"gr-diffsem: WARNING: {grc.name} not compiled (its .grc is installed): {last[0]}")
            out_py.unlink(missing_ok=True)
            return 0
        lines = generated.read_text().splitlines(keepends=True)
    body = lines[1:] if lines and lines[0].startswith("#!") else lines
    out_py.write_text(f"#!{python}\n" + PROLOGUE.format(rel=site_rel) + "".join(body))
    out_py.chmod(0o755)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
