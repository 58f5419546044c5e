#!/usr/bin/env bash
# Build the isolated checkov venv (.tools/checkov) from tools/checkov/requirements.txt.
#
# checkov cannot share .venv: it downgrades `packaging` and pulls boto3, numpy... so it gets its
# own venv, installed with --require-hashes from the compiled lock. Idempotent: a stamp holding
# the sha256 of requirements.txt and of this script makes a second run instant; a change to
# either rebuilds the venv from scratch. `make checkov` / `make test` use the stamp as target.
#
# To bump checkov: edit requirements.in, then (from the repo root)
#   .tools/bin/uv pip compile --generate-hashes --python-version 3.11 \
#     --python-platform x86_64-unknown-linux-gnu \
#     tools/checkov/requirements.in -o tools/checkov/requirements.txt
#
# --compile-bytecode: checkov imports a great many modules (~8 s from source, ~3.5 s from .pyc);
# with PYTHONDONTWRITEBYTECODE=1 in the environment Python would never cache them itself.
#
# Environment: PYTHON (default python3.11), UV (default .tools/bin/uv, else uv on PATH),
# CHECKOV_VENV (default .tools/checkov).
set -euo pipefail

SELF="$(realpath "${BASH_SOURCE[0]}")"
cd "$(dirname "$SELF")/../.."

PYTHON="${PYTHON:-python3.11}"
VENV="${CHECKOV_VENV:-.tools/checkov}"
REQS=tools/checkov/requirements.txt
STAMP="$VENV/.installed"

if [[ -z "${UV:-}" ]]; then
    if [[ -x .tools/bin/uv ]]; then UV=.tools/bin/uv; else UV=uv; fi
fi

want="$(cat "$REQS" "$SELF" | sha256sum | cut -d' ' -f1)"
if [[ -f "$STAMP" && -x "$VENV/bin/checkov" && "$(cat "$STAMP")" == "$want" ]]; then
    touch "$STAMP" # up to date: tell make so
    exit 0
fi

rm -rf "$VENV"
"$UV" venv --quiet --python "$PYTHON" "$VENV"
VIRTUAL_ENV="$VENV" "$UV" pip install --quiet --compile-bytecode --require-hashes --python "$VENV/bin/python" -r "$REQS"
"$VENV/bin/checkov" --version >/dev/null
echo "$want" >"$STAMP"
echo "checkov $("$VENV/bin/checkov" --version) installed in $VENV"
