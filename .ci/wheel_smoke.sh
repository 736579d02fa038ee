#!/usr/bin/env bash
# Wheel smoke test: build the sdist and wheel, check them with twine, install only the wheel
# (plus torch) into a fresh virtual environment and run the main commands in an empty folder,
# so that nothing can come from the checkout. Usage: .ci/wheel_smoke.sh [PYTHON]
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-.venv/bin/python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$python" -m pip install -q build twine
"$python" -m build -q --outdir "$work/dist" . >/dev/null
"$python" -m twine check --strict "$work"/dist/*
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q torch==2.13.0
"$work/venv/bin/pip" install -q "$work"/dist/*.whl
mkdir "$work/empty" && cd "$work/empty"
otc="$work/venv/bin/otcolor"
day=$("$work/venv/bin/python" -c "from otcolor.data import image_path; print(image_path('ocean_day.jpg'))")
sunset=$("$work/venv/bin/python" -c "from otcolor.data import image_path; print(image_path('ocean_sunset.jpg'))")
"$otc" --version
"$otc" transfer "$day" "$sunset" -o out.png --steps 5 --samples 20000 --save-map look.otmap --quiet
"$otc" lut look.otmap -o look.cube --size 9
"$otc" lut look.otmap -o look.csp --size 9
# Without --out: the figures need matplotlib (the bench extra), and only the wheel is installed.
"$otc" bench pixels --model cmgn --loss ot --steps 5 --quiet >/dev/null
"$otc" bench known --photo ocean_day --family separable --steps 5 --quiet >/dev/null
echo "wheel smoke: OK"
