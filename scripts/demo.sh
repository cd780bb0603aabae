#!/usr/bin/env bash
# Installs the dependencies, builds the `pali3` command line, then
#   1. runs the models trained here on the world of shapes (examples/models/shapes/, docs/shapes.md:
#      captions, answers, boxes and masks)
#      on committed sample scenes: their answers are meant to be right;
#   2. runs the whole pipeline on real files with a tiny PaLI-3 of RANDOM weights (a sentencepiece
#      model trained on examples/data/corpus.txt, the VQ-VAE as .npz, the bundled sample image):
#      every stage real, the output noise; the 5B-shaped benchmark is `pali3 bench --preset pali3_5b`.
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

S=examples/models/shapes
SCENES=examples/data/shapes
banner "Part 1: models trained here on the world of shapes ($S, docs/shapes.md)"
echo "SigLIP pair (2.4 M parameters, bf16): zero-shot over the 12 texts 'a {colour} {shape}'"
LABELS="a red circle|a red square|a red triangle|a green circle|a green square|a green triangle|a blue circle|a blue square|a blue triangle|a yellow circle|a yellow square|a yellow triangle"
for i in 000000 000002 000007; do
  truth=$(grep -o "\"image\":\"$i.png\".*\"caption\":\"[^\"]*\"" "$SCENES/scenes.jsonl" | sed 's/.*"caption":"\([^"]*\)"/\1/')
  best=$("$P" embed "$SCENES/$i.png" --weights "$S/siglip.safetensors" --tokenizer "$S/tokenizer.model" --texts "$LABELS" |
         grep -E '^  [0-9.]+  a ' | sort -rn | head -1 | sed 's/^ *[0-9.]* *//')
  printf '  %s: %-18s (truth: %s)\n' "$SCENES/$i.png" "$best" "$truth"
done
"$P" eval --scenes "$SCENES" --weights "$S/siglip.safetensors" --tokenizer "$S/tokenizer.model" | sed -n 2p

echo
echo "PaLI-3 (SigLIP-style ViT, projector, T5 encoder-decoder; 1.2 M parameters, bf16): captions, answers, boxes, masks"
FS=(--weights "$S/pali3.safetensors" --tokenizer "$S/tokenizer.model")
output() { sed -n 's/^output: "\(.*\)" ([0-9]* tokens.*/\1/p'; }
# truth_of SCENE PATTERN: the quoted value that ends the first match of PATTERN in SCENE's ground truth
truth_of() { grep "\"image\":\"$1.png\"" "$SCENES/scenes.jsonl" | grep -o "$2\":\"[^\"]*\"" | head -1 | sed 's/.*:"\([^"]*\)"/\1/'; }
for i in 000001 000003 000009; do
  printf '  %s  caption en: %-52s (truth: %s)\n' "$i.png" "\"$("$P" caption "$SCENES/$i.png" "${FS[@]}" | output)\"" "$(truth_of $i '"caption')"
done
for iq in "000003|how many shapes are there?" "000003|what color is the square?" "000009|what shape is green?" "000001|what color is the triangle?"; do
  i=${iq%%|*}; q=${iq#*|}
  printf '  %s  %-30s %-10s (truth: %s)\n' "$i.png" "$q" "\"$("$P" vqa "$SCENES/$i.png" "$q" "${FS[@]}" | output)\"" \
    "$(truth_of $i "\"question\":\"$q\",\"answer")"
done
mkdir -p "$D"
echo "  000009.png  detect square ; circle   (boxes in pixels y1 x1 y2 x2; overlay: $D/shapes_detect.png)"
"$P" detect "$SCENES/000009.png" "square ; circle" "${FS[@]}" --out "$D/shapes_detect.png" | { grep '^object' || echo "no box"; } | sed 's/^/    /'
grep '"image":"000009.png"' "$SCENES/scenes.jsonl" | grep -o '"shape":"[a-z]*","color":"[a-z]*","box":\[[0-9,]*\]' |
  sed 's/"shape":"\([a-z]*\)".*"box":\[\([0-9]*\),\([0-9]*\),\([0-9]*\),\([0-9]*\)\]/    truth  "\1": box y1=\2 x1=\3 y2=\4 x2=\5/' | grep -E '"(square|circle)"'
echo "  000001.png  segment triangle   (box, 16 <seg> codes -> the VQ-VAE's mask; overlay: $D/shapes_segment.png)"
"$P" segment "$SCENES/000001.png" triangle "${FS[@]}" --vqvae "$S/vqvae.safetensors" --out "$D/shapes_segment.png" |
  { grep -E '^(object|mask)' || echo "no mask"; } | sed 's/^/    /'
echo "  every task on the $(wc -l < "$SCENES/scenes.jsonl") sample scenes (pali3 eval; masks by $S/vqvae.safetensors):"
"$P" eval --scenes "$SCENES" "${FS[@]}" --vqvae "$S/vqvae.safetensors" | sed -n '2,7p' | sed 's/^/    /'

banner "Part 2: the whole pipeline with RANDOM weights (output is noise; every stage is real)"
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
