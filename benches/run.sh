#!/usr/bin/env bash
# Reruns the figures of BENCHMARKS.md: CRC speed, a 64 MiB and a 256 MiB video
# through `serve` against a raw loopback copy, and 500 then 1,000 cameras at once.
# Extra flags go to the bench, e.g. benches/run.sh --quick, or --dir /dev/shm to
# take the disk out of the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
cargo bench --quiet --bench load -- "$@"
