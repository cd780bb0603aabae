#!/usr/bin/env bash
# Installs the dependencies, builds the `pali3` command line and runs the whole pipeline on real
# files: a tiny PaLI-3 written to safetensors (RANDOM weights), a sentencepiece model trained here
# on examples/data/corpus.txt, the VQ-VAE mask decoder as .npz, and the bundled sample image.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build/gcc -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=g++ >/dev/null
cmake --build build/gcc -j "$(nproc)" --target pali3_cli
P=build/gcc/tools/pali3
D=build/demo
IMG=examples/data/sample.png
F="--weights $D/model.safetensors --tokenizer $D/tokenizer.model"
banner() { printf '\n==== %s\n' "$*"; }

banner "pali3 make-demo $D   (tiny PaLI-3, random weights, trained tokenizer, VQ-VAE)"
"$P" make-demo "$D" 2>/dev/null
banner "pali3 inspect $D/model.safetensors"
"$P" inspect "$D/model.safetensors" --quiet
cat <<'NOTE'

NOTE: the weights are RANDOM (no checkpoint can be downloaded here), so the generated text,
boxes and masks are not meaningful. Every stage below is real: safetensors and npz loaders,
sentencepiece tokenizer with <loc>/<seg> tokens, stb image decoding and resizing, the SigLIP
tower, projector, UL2 encoder, cached decoder, beam search, output parsing and the VQ-VAE.
With real checkpoints the same commands apply (docs/pipeline.md).
NOTE
banner "pali3 caption $IMG"
"$P" caption "$IMG" $F --max-new-tokens 16
banner "pali3 detect $IMG \"house ; tree\"   (beam 4)"
"$P" detect "$IMG" "house ; tree" $F --beam 4 --max-new-tokens 24 --out "$D/detect.png"
banner "pali3 segment $IMG house"
"$P" segment "$IMG" house $F --vqvae "$D/vae.npz" --max-new-tokens 24 --out "$D/segment.png"
banner "pali3 bench --weights $D/model.safetensors   (per-stage timings; --preset pali3_5b for the 5B shapes)"
"$P" bench --weights "$D/model.safetensors" --steps 16 --dtype f32
