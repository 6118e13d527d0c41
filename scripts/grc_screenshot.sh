#!/usr/bin/env bash
# Opens a flowgraph in GNU Radio Companion on a virtual X display (Xvfb) and saves a screenshot
# of the whole screen with ImageMagick's `import -window root`.
#   scripts/grc_screenshot.sh [FLOWGRAPH.grc [OUT.png]]
# defaults: flowgraphs/loopback_sim.grc -> docs/figures/grc_loopback_sim.png
# Installs xvfb, xauth and imagemagick (Debian) when missing and run as root. GRC runs with a
# throw-away preferences file (GRC's default view toggles, a 1600x1000 window, the console and
# block tree closed), so the picture does not depend on the user's grc.conf.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GRC="$(realpath "${1:-$REPO/flowgraphs/loopback_sim.grc}")"
OUT="$(realpath -m "${2:-$REPO/docs/figures/grc_$(basename "${GRC%.grc}").png}")"
WIDTH="${GRC_SHOT_WIDTH:-1600}" HEIGHT="${GRC_SHOT_HEIGHT:-1000}" WAIT="${GRC_SHOT_WAIT:-15}"

missing=()
command -v xvfb-run >/dev/null || missing+=(xvfb xauth)
command -v import >/dev/null || missing+=(imagemagick)
python3 -c 'import gi; gi.require_version("Gtk", "3.0")' 2>/dev/null || missing+=(gir1.2-gtk-3.0)
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "grc_screenshot: install ${missing[*]} first (apt-get)" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat > "$work/grc.conf" <<EOF
[main]
main_window_width = $WIDTH
main_window_height = $HEIGHT
console_window_visible = False
blocks_window_visible = False
variable_editor_visable = False
EOF
mkdir -p "$(dirname "$OUT")"
export GRC_PREFS_PATH="$work/grc.conf" HOME="$work"
export GRC_BLOCKS_PATH="$REPO/grc${GRC_BLOCKS_PATH:+:$GRC_BLOCKS_PATH}"
export PYTHONPATH="$REPO/python:$REPO/gr-diffsem${PYTHONPATH:+:$PYTHONPATH}"

# One virtual display runs GRC in the background, waits for it to draw, grabs the screen, stops GRC.
xvfb-run -a -s "-screen 0 ${WIDTH}x${HEIGHT}x24" bash -c '
  gnuradio-companion "$1" > "$3/grc.log" 2>&1 &
  pid=$!
  sleep "$4"
  kill -0 "$pid" 2>/dev/null || { cat "$3/grc.log" >&2; exit 1; }
  import -window root "$2"
  kill "$pid"; wait "$pid" 2>/dev/null || true
' _ "$GRC" "$OUT" "$work" "$WAIT"
echo "grc_screenshot: wrote $OUT"
