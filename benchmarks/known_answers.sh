#!/usr/bin/env bash
# Regenerates every table and figure of the known-answer benchmarks (README "Benchmarks with
# known answers"): Gaussians at D = 2, 16, 64, the seed's Gaussian mixtures, and the ocean pixel
# pair, every model x loss, into one folder (default docs/bench).
#   bash benchmarks/known_answers.sh [OUT]
set -euo pipefail
out="${1:-docs/bench}"
otcolor="${OTCOLOR:-otcolor}"
for dim in 2 16 64; do
  /usr/bin/time -f "gaussian --dim $dim: %e s wall" "$otcolor" bench gaussian --dim "$dim" --out "$out" --force
done
/usr/bin/time -f "gmm: %e s wall" "$otcolor" bench gmm --out "$out" --force
/usr/bin/time -f "pixels: %e s wall" "$otcolor" bench pixels --out "$out" --force
