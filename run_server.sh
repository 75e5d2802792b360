#!/usr/bin/env bash
# Starts dashcam-server with the settings below. Edit them, then run: ./run_server.sh
# (Extra flags are passed on, e.g. ./run_server.sh --allow-imei 350612071913857)

# TCP port the cameras connect to: the "Port" in the camera settings of the tracker.
PORT=5000
# Folder where downloads go: <folder>/<IMEI>/<date>_<time>_<file>.h265 / .jpg + .json
OUTPUT_DIR=downloads
# auto = every camera (DualCam, ADAS, DSM; protocol 5 and 6); or only one family: dualcam, adas, dsm
MODE=auto
# 1 = ask each file's metadata (time, trigger, GPS; firmware 03.27.04 and later); 0 = off
METADATA=0
# Log detail: info, or debug to see every packet in hex
LOG_LEVEL=info

set -euo pipefail
cd "$(dirname "$0")"
BIN=target/release/dashcam-server
if [ ! -x "$BIN" ] || [ -n "$(find src Cargo.toml -newer "$BIN" 2>/dev/null | head -n 1)" ]; then
    echo "Building dashcam-server (release)..."
    cargo build --release --quiet
fi
# The settings above reach the server as DASHCAM_* variables, so flags given
# on the command line win over them.
export DASHCAM_PORT="$PORT" DASHCAM_OUTPUT_DIR="$OUTPUT_DIR" DASHCAM_MODE="$MODE"
if [ "$METADATA" = "1" ]; then export DASHCAM_METADATA=true; else export DASHCAM_METADATA=false; fi
RUST_LOG="${RUST_LOG:-$LOG_LEVEL}" exec "$BIN" serve "$@"
