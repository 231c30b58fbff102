#!/bin/sh
# The tiling rows of docs/benchmarks.md: one process per size and tiling
# (clean peak memory), serialised with the other heavy runs of the machine.
# Usage: sh scripts/tiling_benchmark.sh [out.jsonl]
set -e
out=${1:-out/tiling.jsonl}
py=${PYTHON:-.venv/bin/python}
run() { flock /tmp/nst_heavy.lock "$py" scripts/tiling_benchmark.py --json="$out" "$@"; }
run --size=1024 --tile_size=768 --mode=overhead --repeats=3
run --size=1024 --tile_size=512 --mode=overhead --repeats=3
run --size=1024 --tile_size=0 --iterations=2
run --size=1024 --tile_size=768 --iterations=2
run --size=2048 --tile_size=0 --iterations=2
run --size=2048 --tile_size=1024 --iterations=2
run --size=4096 --tile_size=512 --iterations=2
run --size=8192 --tile_size=768 --iterations=2 --history_size=2
