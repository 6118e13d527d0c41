"""`diffsem report blocks`: each block's section of docs/guide/blocks.md, its ports, parameter
table and documentation, rewritten from its GRC definition (grc/diffsem_*.block.yml: one place,
and what GNU Radio Companion shows). What the guide adds of its own starts at the section's
"Counters" paragraph and is kept. `--check` changes nothing and exits 1 when the guide differs
(a test runs it)."""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
GUIDE = Path("docs/guide/blocks.md")
TABLE_HEAD = "| parameter | GRC label | default |\n|---|---|---|\n"


def _port(p: dict, unnamed: str) -> str:
    kind = p.get("domain", "stream")
    what = kind if kind == "message" else f"{kind}, {p.get('dtype', '')}"
    return f"`{p.get('id', unnamed)}` ({what}{', optional' if p.get('optional') else ''})"


def ports_line(block: dict) -> str:
    def side(ports, unnamed):  # a stream port has no id in GRC: the guide calls it in / out
        return ", ".join(_port(p, unnamed) for p in ports) if ports else "none"
    return f"Ports: in {side(block.get('inputs') or [], 'in')}; out {side(block.get('outputs') or [], 'out')}."


def parameter_table(block: dict) -> str:
    rows = []
    for p in block.get("parameters") or []:
        label = p.get("label", p["id"])
        if p.get("options"):
            label += f" (one of {', '.join(str(o) for o in p['options'])})"
        default = p.get("default", "")
        rows.append(f"| `{p['id']}` | {label} | `{'' if default is None else default}` |\n")
    return TABLE_HEAD + "".join(rows)


def section(block: dict, own: str = "") -> str:
    """The guide's section of a block: the generated part, then `own` (its Counters paragraph...)."""
    name = block["id"].removeprefix("diffsem_")
    category = block.get("category", "[diffsem]").strip("'")
    parts = [f"## {block['label']} (`{name}`)", f"In GRC under {category}. Python: `diffsem.{name}(...)`",
             ports_line(block), parameter_table(block).rstrip("\n"), block.get("documentation", "").strip()]
    if own.strip():
        parts.append(own.strip())
    return "\n\n".join(p for p in parts if p) + "\n\n"


def _section(text: str, name: str) -> tuple[int, int]:
    """[start, end) of the guide's section of block `name` ("## Title (`name`)" to the next "## ")."""
    m = re.search(rf"^## .*\(`{re.escape(name)}`\)\n", text, re.M)
    if m is None:
        raise KeyError(name)
    nxt = re.search(r"^## ", text[m.end():], re.M)
    return m.start(), m.end() + nxt.start() if nxt else len(text)


def update(text: str, blocks: dict[str, dict]) -> tuple[str, list[str]]:
    """The guide with each block's ports line and table rewritten; and the blocks it has no section for."""
    missing = []
    for name, block in blocks.items():
        try:
            start, end = _section(text, name)
        except KeyError:
            missing.append(name)
            continue
        own = re.search(r"^Counters", text[start:end], re.M)
        sec = section(block, text[start + own.start():end] if own else "")
        text = text[:start] + sec + text[end:]
    return text, missing


def load_blocks(root: Path = ROOT) -> dict[str, dict]:
    out = {}
    for path in sorted((root / "grc").glob("diffsem_*.block.yml")):
        block = yaml.safe_load(path.read_text())
        out[block["id"].removeprefix("diffsem_")] = block
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="diffsem report blocks", description=__doc__)
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if the guide differs")
    p.add_argument("--root", type=Path, default=ROOT, help="the repository's root (default: this checkout)")
    a = p.parse_args(argv)
    guide = a.root / GUIDE
    old = guide.read_text()
    new, missing = update(old, load_blocks(a.root))
    if missing:
        print(f"{GUIDE}: no section for {', '.join(missing)} (add '## Title (`name`)' with a Ports line "
              "and a parameter table)", file=sys.stderr)
    if a.check:
        if new != old or missing:
            print(f"{GUIDE} differs from grc/*.block.yml: run diffsem report blocks", file=sys.stderr)
            return 1
        return 0
    if new != old:
        guide.write_text(new)
        print(f"rewrote {GUIDE}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
