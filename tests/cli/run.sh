#!/usr/bin/env bash
# End-to-end checks of the `pali3` command line on files it writes itself:
#   make-demo -> inspect / caption / vqa / detect / segment / generate / dump / bench,
#   init -> convert to HF names (+ config.json) -> the same activations from either file,
#   and the error paths (exit code 1 and a message naming the problem, never a crash).
# usage: run.sh PALI3_BINARY SOURCE_DIR WORK_DIR
set -uo pipefail
P=$(realpath "$1"); SRC=$(realpath "$2"); W=$(realpath -m "$3")
rm -rf "$W"; mkdir -p "$W"
IMG=$SRC/examples/data/sample.png
fails=0
ok()   { echo "ok: $*"; }
bad()  { echo "FAIL: $*"; fails=$((fails + 1)); }
# expect CODE PATTERN -- command...: exit status CODE and PATTERN in stdout+stderr
expect() {
  local code=$1 pattern=$2; shift 3
  local out; out=$("$@" 2>&1); local rc=$?
  if [[ $rc -ne $code ]]; then bad "exit $rc (wanted $code): $*"; echo "$out" | tail -5; return; fi
  if ! grep -qE -- "$pattern" <<<"$out"; then bad "no /$pattern/ in output of: $*"; echo "$out" | tail -5; return; fi
  ok "$* -> $code /$pattern/"
}

D=$W/demo
F=(--weights "$D/model.safetensors" --tokenizer "$D/tokenizer.model")
expect 0 "RANDOM weights" -- "$P" make-demo "$D"
expect 0 "missing from the checkpoint: 0" -- "$P" inspect "$D/model.safetensors" --quiet
"$P" inspect "$D/model.safetensors" --quiet | sed -n 's/^config (checkpoint metadata (pali3.config)): //p' > "$D/pali3_config.json"
expect 0 "output: " -- "$P" caption "$IMG" "${F[@]}" --max-new-tokens 8
expect 0 "output: " -- "$P" caption "$IMG" "${F[@]}" --max-new-tokens 8 --dtype bf16 --threads 1
expect 0 "prompt: \"answer en what is this\?\"" -- "$P" vqa "$IMG" "what is this?" "${F[@]}" --max-new-tokens 8 --beam 3
expect 0 "overlay: " -- "$P" detect "$IMG" "house ; tree" "${F[@]}" --max-new-tokens 12 --out "$W/detect.png"
expect 0 "overlay: " -- "$P" segment "$IMG" house "${F[@]}" --vqvae "$D/vae.npz" --max-new-tokens 12 --out "$W/segment.png"
expect 0 "ids:" -- "$P" generate "$IMG" "caption en" "${F[@]}" --max-new-tokens 4
expect 0 "wrote [0-9]+ activations" -- "$P" dump "$IMG" --weights "$D/model.safetensors" --tokenizer "$D/tokenizer.model" --out "$W/act"
expect 0 "decode step" -- "$P" bench --weights "$D/model.safetensors" --steps 2 --dtype f32
expect 0 "decode step" -- "$P" bench --preset pali3_tiny --steps 2
expect 0 "output: " -- "$P" caption "$IMG" "${F[@]}" --max-new-tokens 4 --dtype bf16 --prepack
# f32 weights prepacked into the GEMM's panels: the same bits, so the same caption.
c_plain=$("$P" caption "$IMG" "${F[@]}" --max-new-tokens 8 2>/dev/null | grep "^output")
c_packed=$("$P" caption "$IMG" "${F[@]}" --max-new-tokens 8 --prepack 2>/dev/null | grep "^output")
if [[ -n $c_plain && $c_plain == "$c_packed" ]]; then ok "f32 --prepack gives the same caption"; else bad "f32 --prepack: '$c_plain' vs '$c_packed'"; fi

# One tower alone, in HF names with config.json beside it: same activations as from our file.
mkdir -p "$W/hfv" "$W/hft" "$W/hft10"
expect 0 "wrote" -- "$P" init "$W/vit.safetensors" --preset "vit:Ti/16@48" --seed 3
expect 0 "converted" -- "$P" convert "$W/vit.safetensors" "$W/hfv/model.safetensors" --naming hf
expect 0 "naming: HF SigLIP" -- "$P" inspect "$W/hfv/model.safetensors" --quiet
expect 0 "wrote" -- "$P" dump "$IMG" --weights "$W/vit.safetensors" --out "$W/dv_ours"
expect 0 "wrote" -- "$P" dump "$IMG" --weights "$W/hfv/model.safetensors" --out "$W/dv_hf"
if diff -rq "$W/dv_ours" "$W/dv_hf" >/dev/null; then ok "vision activations identical (ours vs HF names)"; else bad "vision activations differ"; fi
cp "$W/dv_ours/pixels.npy" "$W/pixels.npy"
expect 0 "wrote" -- "$P" dump --pixels "$W/pixels.npy" --weights "$W/hfv/model.safetensors" --out "$W/dv_npy"
if cmp -s "$W/dv_npy/pooled.npy" "$W/dv_hf/pooled.npy"; then ok "preprocessed .npy input gives the same embedding"; else bad "pixels.npy path differs"; fi
expect 0 "image embedding" -- "$P" embed "$IMG" --weights "$W/hfv/model.safetensors"
cat > "$W/t5cfg.json" <<'JSON'
{"model":"t5","text":{"vocab":101,"d_model":32,"d_ff":48,"heads":4,"d_kv":8,"encoder_layers":2,"decoder_layers":2,"ffn":"gated_gelu"}}
JSON
sed 's/gated_gelu/relu","tied_embeddings":true,"x":"/' "$W/t5cfg.json" > "$W/t5cfg10.json"
for v in "" 10; do
  expect 0 "wrote" -- "$P" init "$W/t5$v.safetensors" --config "$W/t5cfg$v.json" --seed 4
  expect 0 "converted" -- "$P" convert "$W/t5$v.safetensors" "$W/hft$v/model.safetensors" --naming hf
  expect 0 "wrote" -- "$P" dump --weights "$W/t5$v.safetensors" --encoder-ids 5,6,7,8,9 --decoder-ids 0,3,4 --out "$W/dt_ours$v"
  expect 0 "wrote" -- "$P" dump --weights "$W/hft$v/model.safetensors" --encoder-ids 5,6,7,8,9 --decoder-ids 0,3,4 --out "$W/dt_hf$v"
  if diff -rq "$W/dt_ours$v" "$W/dt_hf$v" >/dev/null && [[ -f "$W/dt_hf$v/logits.npy" ]]; then ok "T5$v activations identical"; else bad "T5$v activations differ"; fi
done

# A SigLIP pair (both towers, t', b): zero-shot scores from our file and from its HF export agree.
cat > "$W/siglip.json" <<'JSON'
{"model":"siglip","vision":{"width":32,"depth":2,"mlp":64,"heads":4,"patch":8,"image":32,"map_head":true},
 "siglip_text":{"vocab":1400,"width":32,"depth":2,"mlp":64,"heads":4,"max_len":16}}
JSON
mkdir -p "$W/hfs"
expect 0 "wrote" -- "$P" init "$W/siglip.safetensors" --config "$W/siglip.json" --seed 5
expect 0 "converted" -- "$P" convert "$W/siglip.safetensors" "$W/hfs/model.safetensors" --naming hf
expect 0 "missing from the checkpoint: 0" -- "$P" inspect "$W/hfs/model.safetensors" --quiet
"$P" embed "$IMG" --weights "$W/siglip.safetensors" --texts "a house|a tree|a cat" --tokenizer "$D/tokenizer.model" | grep -A3 zero-shot > "$W/zs_ours.txt"
"$P" embed "$IMG" --weights "$W/hfs/model.safetensors" --texts "a house|a tree|a cat" --tokenizer "$D/tokenizer.model" | grep -A3 zero-shot > "$W/zs_hf.txt"
if [[ -s "$W/zs_ours.txt" ]] && cmp -s "$W/zs_ours.txt" "$W/zs_hf.txt" && [[ $(wc -l < "$W/zs_ours.txt") -eq 4 ]]; then ok "zero-shot scores identical (ours vs HF names)"; else bad "zero-shot scores differ or missing"; cat "$W/zs_ours.txt" "$W/zs_hf.txt"; fi
expect 1 "needs both SigLIP towers" -- "$P" embed "$IMG" --weights "$W/hfv/model.safetensors" --texts "a|b" --tokenizer "$D/tokenizer.model"
# The portable path when AMX is switched off (or absent): same commands, bf16 weights.
PALI3_NO_AMX=1 expect 0 "output: " -- "$P" caption "$IMG" "${F[@]}" --max-new-tokens 4 --dtype bf16

# Every command has --help, and every documented flag is accepted where it is documented.
for c in inspect make-demo caption vqa detect segment generate embed dump bench init convert help; do
  expect 0 "Usage|Subcommands" -- "$P" $c --help
done
expect 0 "output: " -- "$P" caption "$IMG" "${F[@]}" --max-new-tokens 4 --antialias --lang de --beam 2 --length-penalty 0.5 \
  --max-prompt-tokens 16 --threads 1 --dtype f32
expect 0 "output: " -- "$P" vqa "$IMG" "what?" "${F[@]}" --max-new-tokens 4 --antialias --lang en --prepack
expect 0 "overlay: " -- "$P" detect "$IMG" house "${F[@]}" --max-new-tokens 8 --antialias --out "$W/d2.png" --resolution 64
expect 0 "overlay: " -- "$P" segment "$IMG" house "${F[@]}" --vqvae "$D/vae.npz" --max-new-tokens 8 --antialias --out "$W/s2.png"
expect 0 "ids:" -- "$P" generate "$IMG" "caption en" "${F[@]}" --max-new-tokens 4 --antialias --config "$D/pali3_config.json"
expect 0 "wrote [0-9]+ activations" -- "$P" dump "$IMG" --weights "$D/model.safetensors" --tokenizer "$D/tokenizer.model" \
  --prompt "caption en" --decoder-ids 0,5 --antialias --dtype bf16 --threads 1 --out "$W/act2"
expect 0 "image embedding" -- "$P" embed "$IMG" --weights "$W/hfv/model.safetensors" --antialias --threads 1
expect 0 "decode step" -- "$P" bench --preset pali3_tiny --steps 2 --prompt-tokens 4 --dtype f32 --threads 1 --prepack
# --json: one object on stdout, nothing else.
for cmd in "caption $IMG" "vqa $IMG what?" "detect $IMG house" "segment $IMG house --vqvae $D/vae.npz"; do
  out=$(cd "$W" && "$P" $cmd "${F[@]}" --max-new-tokens 8 --json 2>/dev/null)
  if [[ $(wc -l <<<"$out") -eq 1 && $out == '{"command":'*'"text":'*'"tokens":['*'"log_prob":'*'"objects":['*'"timings_ms":{'*'}' ]]; then
    ok "${cmd%% *} --json"; else bad "${cmd%% *} --json: $out"; fi
done
out=$("$P" embed "$IMG" --weights "$W/siglip.safetensors" --texts "a house|a cat" --tokenizer "$D/tokenizer.model" --json 2>/dev/null)
if [[ $(wc -l <<<"$out") -eq 1 && $out == '{"command":"embed","embedding":['*'"scores":[{"text":"a house","probability":'*'}' ]]; then
  ok "embed --json"; else bad "embed --json: $out"; fi
out=$("$P" detect "$IMG" "house ; tree" "${F[@]}" --max-new-tokens 24 --json --out "$W/d3.png" 2>/dev/null)
if [[ $out == *'"overlay":"'"$W/d3.png"'"'* && -s "$W/d3.png" ]]; then ok "detect --json names the overlay"; else bad "detect --json overlay: $out"; fi

# Errors: exit 1 with a message that names the problem.
printf 'garbage' > "$W/bad.safetensors"
printf 'not an image' > "$W/bad.png"
expect 1 "truncated safetensors|header" -- "$P" inspect "$W/bad.safetensors"
expect 1 "cannot read image header" -- "$P" caption "$W/bad.png" "${F[@]}"
expect 1 "cannot open image" -- "$P" caption "$W/missing.png" "${F[@]}"
expect 1 "not expected: .*--colour" -- "$P" caption "$IMG" "${F[@]}" --colour red
expect 1 "--threads: Value 0 not in range" -- "$P" caption "$IMG" "${F[@]}" --threads 0
expect 1 "--max-new-tokens: Value 288230376151711745 not in range" -- "$P" caption "$IMG" "${F[@]}" --max-new-tokens 288230376151711745
expect 1 "--dtype: int4 not in" -- "$P" caption "$IMG" "${F[@]}" --dtype int4
expect 1 "prompt too long" -- "$P" vqa "$IMG" "$(printf 'what %.0s' {1..100})" "${F[@]}"
expect 1 "not valid UTF-8" -- "$P" vqa "$IMG" $'caf\xff' "${F[@]}"
expect 1 "tokenizer larger than the model" -- "$P" caption "$IMG" --weights "$W/vit.safetensors" --tokenizer "$D/tokenizer.model" --preset pali3_tiny
expect 1 "cannot load sentencepiece model" -- "$P" caption "$IMG" --weights "$D/model.safetensors" --tokenizer "$W/bad.png"
expect 1 "unknown preset" -- "$P" bench --preset pali3_9b
expect 1 "missing flag \(at --vqvae\)" -- "$P" segment "$IMG" house "${F[@]}"
expect 1 "bad token id" -- "$P" dump --weights "$W/t5.safetensors" --encoder-ids 1,x --out "$W/x"
expect 1 "encoder id out of range" -- "$P" dump --weights "$W/t5.safetensors" --encoder-ids 1,1000 --out "$W/x"
expect 2 "present with a wrong shape or dtype: [1-9]" -- "$P" inspect "$W/vit.safetensors" --preset "vit:S/16@48" --quiet
expect 1 "unknown command .frobnicate" -- "$P" frobnicate
expect 1 "not a non-negative integer" -- "$P" init "$W/x.safetensors" --preset "vit:Ti/16@-16"

echo "$fails failure(s)"
exit $((fails > 0))
