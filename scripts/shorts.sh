#!/usr/bin/env bash
# Set up a venv (if needed) and build the example short video.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e .
cd examples
../.venv/bin/mb build //shorts:final
echo "the short is at examples/mb-out/shorts/final.mp4"
