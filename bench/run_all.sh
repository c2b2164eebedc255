#!/usr/bin/env bash
# Install the peers, generate the workloads and compare mb with make, ninja and doit.
# Arguments are passed to compare.py (e.g. --plan wide10k:abcde --repeat 3).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="$here/../.venv/bin/python"
[ -x "$python" ] || python="$(command -v python3)"
exec "$python" "$here/compare.py" "$@"
