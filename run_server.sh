#!/usr/bin/env bash
# Starts dashcam-server with the settings below. Edit them, then run: ./run_server.sh
# A DASHCAM_* variable already set in the environment wins over the value here,
# and flags win over both, e.g. ./run_server.sh --allow-imei 350612071913857

# TCP port the cameras connect to: the "Port" in the camera settings of the tracker.
PORT=5000
# Folder where downloads go (quote a name with spaces: OUTPUT_DIR="my downloads"): <folder>/<IMEI>/<date>_<time>_<file>.h265 / .jpg + .json,
# and <folder>/index.html, a gallery of everything received (open it in a browser).
OUTPUT_DIR=downloads
# auto = every camera (DualCam, ADAS, DSM; protocol 5 and 6); or only one family: dualcam, adas, dsm
MODE=auto
# Ask each file's metadata (time, trigger, GPS; firmware 03.27.04 and later): 1 or 0 (true/false, yes/no, on/off)
METADATA=0
# Convert each video to mp4 with its sound (needs ffmpeg): 1 or 0
CONVERT=0
# The log is also written here.
LOG_FILE=logs/dashcam-server.log
# Log detail: info, or debug to see every packet in hex
LOG_LEVEL=info

set -euo pipefail
cd "$(dirname "$0")"
BIN="${DASHCAM_BIN:-target/release/dashcam-server}"
if [ -z "${DASHCAM_BIN:-}" ] && { [ ! -x "$BIN" ] || [ -n "$(find src crates Cargo.toml -newer "$BIN" 2>/dev/null | head -n 1)" ]; }; then
    if command -v cargo >/dev/null 2>&1; then
        echo "Building dashcam-server (release)..."
        cargo build --release --quiet
    elif [ -x "$BIN" ]; then
        echo "Note: cargo not found: running the dashcam-server already built (older than the sources)." >&2
    else
        echo "dashcam-server is not built and cargo was not found: install Rust from https://rustup.rs" >&2
        exit 1
    fi
fi
case "$(printf '%s' "$CONVERT" | tr '[:upper:]' '[:lower:]')" in
    1|true|yes|on) : "${DASHCAM_CONVERT:=mp4}"; export DASHCAM_CONVERT ;;
esac
: "${DASHCAM_PORT:=$PORT}" "${DASHCAM_OUTPUT_DIR:=$OUTPUT_DIR}" "${DASHCAM_MODE:=$MODE}"
: "${DASHCAM_METADATA:=$METADATA}" "${DASHCAM_LOG_FILE:=$LOG_FILE}" "${RUST_LOG:=$LOG_LEVEL}"
export DASHCAM_PORT DASHCAM_OUTPUT_DIR DASHCAM_MODE DASHCAM_METADATA DASHCAM_LOG_FILE RUST_LOG
exec "$BIN" serve "$@"
