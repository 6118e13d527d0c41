#!/usr/bin/env python3
"""Block rectangles of .grc flowgraphs as GNU Radio Companion draws them, and the overlaps.

Sizes come from GRC's own canvas classes (gnuradio.grc.gui.canvas: Block.create_labels and
create_shapes, Block.get_extents, which includes the ports sticking out of a block), with text
measured by Pango on an off-screen Cairo surface, so no display is needed. GRC's view toggles are
taken at their defaults (parameter values shown, block ids hidden, port labels shown), as in a
fresh install. Needs Debian's gir1.2-gtk-3.0 (scripts/setup.sh installs it).

    scripts/grc_layout.py flowgraphs/*.grc            # lists overlaps; exit 1 if any
    scripts/grc_layout.py --json flowgraphs/x.grc     # every block's rectangle, as JSON
    scripts/grc_layout.py --move blk=X,Y flowgraphs/x.grc   # rewrite one block's coordinate

A block must also stay right of and below the canvas origin (GRC draws nothing there). Two
blocks overlap when their rectangles (ports and comments included) come closer than
--gap pixels (default 8, one GRC grid step), so every port and label stays visible.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import sys
import types

REPO = pathlib.Path(__file__).resolve().parents[1]


def _grc_platform():
    """GRC's GUI platform with off-screen text layout; imported lazily (it needs Gtk's typelibs)."""
    os.environ.setdefault("GRC_BLOCKS_PATH", str(REPO / "grc"))
    import gi

    gi.require_version("Gtk", "3.0")
    gi.require_version("PangoCairo", "1.0")
    import cairo
    from gi.repository import GLib, PangoCairo

    # ParamWidgets styles the default screen at import; without a display there is none, and the
    # widgets are not needed to size blocks.
    sys.modules.setdefault("gnuradio.grc.gui.ParamWidgets", types.ModuleType("gnuradio.grc.gui.ParamWidgets"))
    from gnuradio import gr
    from gnuradio.grc.core.FlowGraph import FlowGraph as CoreFlowGraph
    from gnuradio.grc.gui.Platform import Platform  # first: the gui modules import each other in this order
    from gnuradio.grc.gui import Actions
    from gnuradio.grc.gui.canvas import block as canvas_block
    from gnuradio.grc.gui.canvas import port as canvas_port

    context = cairo.Context(cairo.ImageSurface(cairo.FORMAT_ARGB32, 8, 8))

    class _OffscreenArea:  # stands in for Gtk.DrawingArea: only its Pango layout is used
        def create_pango_layout(self, text):
            layout = PangoCairo.create_layout(context)
            layout.set_text(text, -1)
            return layout

    shim = types.SimpleNamespace(DrawingArea=_OffscreenArea)
    canvas_block.Gtk = canvas_port.Gtk = shim
    for action in vars(Actions).values():  # the view toggles at GRC's defaults, not a user's grc.conf
        if isinstance(action, Actions.Action) and action.preference_name:
            action.set_state(GLib.Variant.new_boolean(bool(action.default)))

    platform = Platform(version=gr.version(), version_parts=(gr.major_version(), gr.api_version(), gr.minor_version()),
                        prefs=gr.prefs(), install_prefix=gr.prefix())
    platform.build_library()
    platform.FlowGraph = CoreFlowGraph  # the canvas flowgraph wants a running GRC window
    return platform


def rectangles(platform, grc: pathlib.Path) -> dict:
    """{block name: (x0, y0, x1, y1)} for every enabled or disabled block of one flowgraph."""
    fg = platform.make_flow_graph(str(grc))
    fg.rewrite()
    fg.validate()
    rects = {}
    for block in fg.blocks:
        block.create_labels()
        block.create_shapes()
        x0, y0, x1, y1 = block.get_extents()
        cx0, cy0, cx1, cy1 = block.get_extents_comment()
        if cx1 > cx0:
            x0, y0, x1, y1 = min(x0, cx0), min(y0, cy0), max(x1, cx1), max(y1, cy1)
        rects[block.name] = (float(x0), float(y0), float(x1), float(y1))
    return rects


def overlaps(rects: dict, gap: float = 8.0) -> list:
    """Pairs of blocks whose rectangles are closer than `gap` pixels, with the rectangles."""
    names = sorted(rects)
    found = []
    for i, a in enumerate(names):
        ax0, ay0, ax1, ay1 = rects[a]
        for b in names[i + 1:]:
            bx0, by0, bx1, by1 = rects[b]
            if ax0 < bx1 + gap and bx0 < ax1 + gap and ay0 < by1 + gap and by0 < ay1 + gap:
                found.append((a, b, rects[a], rects[b]))
    return found


def off_canvas(rects: dict) -> list:
    """Blocks that reach left of or above the canvas origin: GRC does not draw there (e.g. a
    source's message input port sticking out left of a block placed at x = 16)."""
    return sorted(name for name, (x0, y0, _, _) in rects.items() if x0 < 0 or y0 < 0)


def _coordinates(platform, grc: pathlib.Path) -> dict:
    fg = platform.make_flow_graph(str(grc))
    return {block.name: tuple(block.states["coordinate"]) for block in fg.blocks}


def spread(rects: dict, coords: dict, gap: float = 8.0, grid: int = 8) -> dict:
    """New coordinates with no overlaps, moving as little as possible: blocks are placed in reading
    order (top to bottom, left to right); one that hits a placed block slides right past it or
    down below it, whichever is the shorter way (down counts 1.5x, to keep rows together)."""
    import heapq

    def up(v):
        return int(-(-v // grid) * grid)

    placed = {}
    result = {}
    for name in sorted(rects, key=lambda n: (coords[n][1], coords[n][0])):
        x0, y0, x1, y1 = rects[name]
        rel = (x0 - coords[name][0], y0 - coords[name][1], x1 - coords[name][0], y1 - coords[name][1])
        cx, cy = max(coords[name][0], up(-rel[0])), max(coords[name][1], up(-rel[1]))  # on the canvas
        frontier, seen = [(0.0, cx, cy)], set()
        while frontier:
            _, x, y = heapq.heappop(frontier)
            if (x, y) in seen:
                continue
            seen.add((x, y))
            r = (x + rel[0], y + rel[1], x + rel[2], y + rel[3])
            hits = [p for p in placed.values()
                    if r[0] < p[2] + gap and p[0] < r[2] + gap and r[1] < p[3] + gap and p[1] < r[3] + gap]
            if not hits:
                break
            for h in hits:
                for nx, ny in ((up(h[2] + gap - rel[0]), y), (x, up(h[3] + gap - rel[1]))):
                    heapq.heappush(frontier, (abs(nx - cx) + 1.5 * abs(ny - cy), nx, ny))
        placed[name] = r
        result[name] = (x, y)
    return result


def move(grc: pathlib.Path, name: str, x: int, y: int):
    """Rewrite one block's `coordinate` in place, in whichever YAML style the file uses."""
    text = grc.read_text()
    if name == "options":
        start = text.index("options:")
    else:
        m = re.search(rf"^- name: {re.escape(name)}\n", text, re.M)
        if not m:
            raise SystemExit(f"{grc.name}: no block named {name}")
        start = m.end()
    end = text.find("\n- name:", start)
    end = len(text) if end < 0 else end
    part = text[start:end]
    new, n = re.subn(r"coordinate: \[[-\d.]+, [-\d.]+\]", f"coordinate: [{x}, {y}]", part, count=1)
    if not n:
        new, n = re.subn(r"coordinate:\n(\s*)- [-\d.]+\n\s*- [-\d.]+", rf"coordinate:\n\g<1>- {x}\n\g<1>- {y}", part, count=1)
    if not n:
        raise SystemExit(f"{grc.name}: {name} has no coordinate")
    grc.write_text(text[:start] + new + text[end:])


def _options_name(grc: pathlib.Path) -> str:
    """The options block is stored under `options:`, named by its `id` parameter."""
    import yaml

    return yaml.safe_load(grc.read_text())["options"]["parameters"]["id"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("grc", nargs="+", type=pathlib.Path)
    ap.add_argument("--gap", type=float, default=8.0, help="smallest free space between blocks (px)")
    ap.add_argument("--json", action="store_true", help="print every block's rectangle and the overlaps as JSON")
    ap.add_argument("--fix", action="store_true",
                    help="move overlapping blocks apart (rewrites the coordinates in the .grc files)")
    ap.add_argument("--move", action="append", default=[], metavar="BLOCK=X,Y",
                    help="set a block's coordinate (only with one .grc file)")
    args = ap.parse_args(argv)
    if args.move:
        if len(args.grc) != 1:
            ap.error("--move takes exactly one .grc file")
        for spec in args.move:
            name, xy = spec.split("=")
            x, y = (int(v) for v in xy.split(","))
            move(args.grc[0], name, x, y)
    platform = _grc_platform()
    report, bad = {}, 0
    for grc in args.grc:
        rects = rectangles(platform, grc)
        if args.fix and (overlaps(rects, args.gap) or off_canvas(rects)):
            coords = _coordinates(platform, grc)
            for name, (x, y) in spread(rects, coords, args.gap).items():
                if (x, y) != tuple(coords[name]):
                    move(grc, "options" if name == _options_name(grc) else name, x, y)
            rects = rectangles(platform, grc)
        clashes, outside = overlaps(rects, args.gap), off_canvas(rects)
        bad += len(clashes) + len(outside)
        report[grc.name] = {"blocks": rects, "overlaps": [[a, b] for a, b, _, _ in clashes], "off_canvas": outside}
        if not args.json:
            for a, b, ra, rb in clashes:
                print(f"{grc.name}: {a} {tuple(int(v) for v in ra)} overlaps {b} {tuple(int(v) for v in rb)}")
            for name in outside:
                print(f"{grc.name}: {name} {tuple(int(v) for v in rects[name])} reaches off the canvas")
    if args.json:
        print(json.dumps(report))
    elif not bad:
        print(f"no overlaps in {len(args.grc)} flowgraph(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
