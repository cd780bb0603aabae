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

# npy_values FILE FIRST COUNT: COUNT float32 values of an .npy from element FIRST, one per line.
npy_values() {
  local hl; hl=$(od -A n -t u2 -j 8 -N 2 "$1" | tr -d ' ')
  od -A n -v -t f4 -j $((10 + hl + 4 * $2)) -N $((4 * $3)) "$1" | tr -s ' ' '\n' | sed '/^$/d'
}
# npy_count FILE: the number of float32 values in an .npy.
npy_count() { local hl; hl=$(od -A n -t u2 -j 8 -N 2 "$1" | tr -d ' '); echo $(( ($(stat -c %s "$1") - 10 - hl) / 4 )); }
# close A B [TOL]: two equally long lists of values agree to TOL (1e-5) of the largest magnitude.
close() {
  [[ $(wc -l <<<"$1") -eq $(wc -l <<<"$2") ]] || return 1
  paste <(echo "$1") <(echo "$2") | awk -v tol="${3:-1e-5}" '{d=$1-$2; if(d<0)d=-d; m=($1<0?-$1:$1); if(m>mx)mx=m; if(d>dm)dm=d; n++}
    END{exit !(n>0 && dm<=tol*(mx>1?mx:1))}'
}
# printed_values LINE: the numbers of an "image embedding (...): v v v ..." line, one per line.
printed_values() { sed 's/^[^:]*://; s/\.\.\.//' <<<"$1" | tr -s ' ' '\n' | sed '/^$/d'; }

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
# PaLI-3 batches: two images with prompts of different lengths (the mask pads the shorter one);
# each row's logits at every step are the ones its image and prompt give alone.
S2=$SRC/examples/data/shapes/000001.png
expect 0 "wrote" -- "$P" dump "$IMG" --weights "$D/model.safetensors" --encoder-ids 5,6 --decoder-ids 0,5,6 --out "$W/pa1"
expect 0 "wrote" -- "$P" dump "$S2" "$IMG" --weights "$D/model.safetensors" --encoder-ids "5,6,7;5,6,0" --encoder-mask "1,1,1;1,1,0" \
  --decoder-ids 0,5,6 --out "$W/pab"
nv=$(npy_count "$W/pa1/step0.text.logits.npy"); same=1
for s in 0 1 2; do
  close "$(npy_values "$W/pab/step$s.text.logits.npy" "$nv" "$nv")" "$(npy_values "$W/pa1/step$s.text.logits.npy" 0 "$nv")" || same=0
done
if [[ $same == 1 ]]; then ok "PaLI-3 dump of 2 images, padded prompts: each row as alone"; else bad "PaLI-3 batch differs from alone"; fi
c1=$("$P" caption "$IMG" "${F[@]}" --max-new-tokens 6 2>/dev/null | grep "^output")
c2=$("$P" caption "$S2" "${F[@]}" --max-new-tokens 6 2>/dev/null | grep "^output")
cb=$("$P" caption "$S2" "$IMG" "${F[@]}" --max-new-tokens 6 2>/dev/null | grep "^output")
if [[ -n $c1 && $cb == "$c2"$'\n'"$c1" ]]; then ok "caption of 2 images in one batch: each as alone"; else bad "batched caption: '$cb' vs '$c2' '$c1'"; fi
expect 0 '^\{"command":"caption".*"image":".*000001.png"\}$' -- "$P" caption "$S2" "$IMG" "${F[@]}" --max-new-tokens 2 --json
expect 0 "wrote" -- "$P" dump "$S2" "$IMG" --weights "$D/model.safetensors" --encoder-ids "5,6,7;5,6,7" --encoder-mask "0,1,1;1,0,1" --out "$W/pa_holes"
expect 1 "encoder mask value .*0 or 1" -- "$P" dump "$S2" "$IMG" --weights "$D/model.safetensors" --encoder-ids "5,6,7;5,6,7" --encoder-mask "1,1,1;1,3,1" --out "$W/x"
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
# A batch of images (files and an (n, 3, S, S) .npy): each row is what the image gives alone.
expect 0 "wrote" -- "$P" dump "$S2" --weights "$W/vit.safetensors" --out "$W/dv_s2"
expect 0 "wrote" -- "$P" dump "$S2" "$IMG" --pixels "$W/pixels.npy" --weights "$W/vit.safetensors" --out "$W/dv_batch"
wv=$(npy_count "$W/dv_ours/pooled.npy")  # the width: one pooled row
if close "$(npy_values "$W/dv_batch/pooled.npy" 0 "$wv")" "$(npy_values "$W/dv_s2/pooled.npy" 0 "$wv")" &&
   close "$(npy_values "$W/dv_batch/pooled.npy" "$wv" "$wv")" "$(npy_values "$W/dv_ours/pooled.npy" 0 "$wv")" &&
   close "$(npy_values "$W/dv_batch/pooled.npy" $((2 * wv)) "$wv")" "$(npy_values "$W/dv_ours/pooled.npy" 0 "$wv")" &&
   ! close "$(npy_values "$W/dv_batch/pooled.npy" 0 "$wv")" "$(npy_values "$W/dv_ours/pooled.npy" 0 "$wv")"; then
  ok "dump of 3 images in one batch: each row as alone"; else bad "batched vision dump differs from alone"; fi
e1=$("$P" embed "$S2" --weights "$W/vit.safetensors" | grep "^image embedding")
e2=$("$P" embed "$IMG" --weights "$W/vit.safetensors" | grep "^image embedding")
eb=$("$P" embed "$S2" "$IMG" --weights "$W/vit.safetensors" | grep "^image embedding")
if [[ -n $e1 && $(wc -l <<<"$eb") -eq 2 ]] && close "$(printed_values "$(sed -n 1p <<<"$eb")")" "$(printed_values "$e1")" 3e-5 &&
   close "$(printed_values "$(sed -n 2p <<<"$eb")")" "$(printed_values "$e2")" 3e-5; then
  ok "embed of 2 images: each as alone"; else bad "batched embed: '$eb' vs '$e1' '$e2'"; fi
expect 0 '"images":\[\{"image":".*000001.png","embedding":.*\},\{"image":".*pixels.npy","embedding":' -- "$P" embed "$S2" --pixels "$W/pixels.npy" --weights "$W/vit.safetensors" --json
expect 1 "preprocessed pixels .*expected <f4 \(n, 3, 48, 48\)" -- "$P" embed --pixels "$W/dv_ours/pooled.npy" --weights "$W/vit.safetensors"
expect 0 "untraced runs: 3, median [0-9.]+ ms, best [0-9.]+ ms, 1 thread\(s\), f32, prepacked" -- "$P" dump --pixels "$W/pixels.npy" \
  --weights "$W/vit.safetensors" --out "$W/dv_time" --threads 1 --prepack --time 3
expect 0 "image embedding" -- "$P" embed "$IMG" --weights "$W/hfv/model.safetensors"
# HF preprocessing: a preprocessor_config.json beside the weights (SigLIP's: Pillow bicubic,
# x / 255, mean = std = 0.5) is followed; --resize bilinear brings back big_vision's resize.
cat > "$W/hfv/preprocessor_config.json" <<'JSON'
{"do_normalize": true, "do_rescale": true, "do_resize": true, "image_mean": [0.5, 0.5, 0.5],
 "image_processor_type": "SiglipImageProcessor", "image_std": [0.5, 0.5, 0.5], "processor_class": "SiglipProcessor",
 "resample": 3, "rescale_factor": 0.00392156862745098, "size": {"height": 48, "width": 48}}
JSON
expect 0 "wrote" -- "$P" dump "$IMG" --weights "$W/hfv/model.safetensors" --out "$W/dv_pil"
expect 0 "wrote" -- "$P" dump "$IMG" --weights "$W/hfv/model.safetensors" --out "$W/dv_flag" --resize bilinear
if ! cmp -s "$W/dv_pil/pixels.npy" "$W/dv_hf/pixels.npy" && cmp -s "$W/dv_flag/pixels.npy" "$W/dv_hf/pixels.npy"; then
  ok "preprocessor_config.json followed (bicubic pixels), --resize bilinear gives big_vision's"; else bad "preprocessing source"; fi
expect 0 "wrote" -- "$P" dump "$IMG" --weights "$W/hfv/model.safetensors" --out "$W/dv_mean" --mean 0.4,0.5,0.6 --std 0.25
if ! cmp -s "$W/dv_mean/pixels.npy" "$W/dv_pil/pixels.npy"; then ok "--mean/--std change the pixels"; else bad "--mean/--std ignored"; fi
expect 1 "--antialias .*expected the tf bilinear resize" -- "$P" embed "$IMG" --weights "$W/hfv/model.safetensors" --antialias
expect 1 "not a finite number \(at --mean\)" -- "$P" embed "$IMG" --weights "$W/hfv/model.safetensors" --mean 0.5,nan,0.5
expect 1 "image std" -- "$P" embed "$IMG" --weights "$W/hfv/model.safetensors" --std 0
expect 1 "--resize" -- "$P" embed "$IMG" --weights "$W/hfv/model.safetensors" --resize lanczos
sed -i 's/"resample": 3/"resample": 1/' "$W/hfv/preprocessor_config.json"
expect 1 "unsupported resample filter \(at .*hfv/preprocessor_config.json.resample\)" -- "$P" embed "$IMG" --weights "$W/hfv/model.safetensors"
rm "$W/hfv/preprocessor_config.json"
# config.json key by key: an activation HF names is honoured, an unknown key is reported, a bad
# value is refused naming the file.
cp "$W/hfv/config.json" "$W/hfv_config.json"
sed -i 's/"hidden_act": *"gelu_pytorch_tanh"/"hidden_act": "gelu"/' "$W/hfv/config.json"
expect 0 "wrote" -- "$P" dump "$IMG" --weights "$W/hfv/model.safetensors" --out "$W/dv_erf"
if [[ -f "$W/dv_erf/pooled.npy" ]] && ! cmp -s "$W/dv_erf/pooled.npy" "$W/dv_hf/pooled.npy"; then ok "hidden_act gelu (erf) changes the output"; else bad "hidden_act ignored"; fi
sed -i 's/"hidden_act": "gelu"/"hidden_act": "quick_gelu"/' "$W/hfv/config.json"
expect 1 "unsupported activation \(at .*hfv/config.json.hidden_act\)" -- "$P" dump "$IMG" --weights "$W/hfv/model.safetensors" --out "$W/dv_x"
cp "$W/hfv_config.json" "$W/hfv/config.json"
sed -i 's/^{/{"rope_thing": 1, /' "$W/hfv/config.json"
expect 0 "note: config keys pali3 does not know, not used: .*hfv/config.json.rope_thing" -- "$P" inspect "$W/hfv/model.safetensors" --quiet
cp "$W/hfv_config.json" "$W/hfv/config.json"
expect 0 "model parameters: 19591209984 in" -- "$P" inspect --preset ul2_20b
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
# HF's attention_mask, any pattern: a left-padded row and a right-padded row each give the logits
# of the 5 ids alone (3 steps x vocab 101); a row of 7 real ids does not.
expect 0 "wrote" -- "$P" dump --weights "$W/t5.safetensors" --encoder-ids "1,1,5,6,7,8,9;5,6,7,8,9,2,2;5,6,7,8,9,9,9" \
  --encoder-mask "0,0,1,1,1,1,1;1,1,1,1,1,0,0;1,1,1,1,1,1,1" --decoder-ids 0,3,4 --out "$W/dt_mask"
alone=$(npy_values "$W/dt_ours/logits.npy" 0 303)
if close "$(npy_values "$W/dt_mask/logits.npy" 0 303)" "$alone" && close "$(npy_values "$W/dt_mask/logits.npy" 303 303)" "$alone" &&
   ! close "$(npy_values "$W/dt_mask/logits.npy" 606 303)" "$alone"; then
  ok "T5 dump with --encoder-mask: left and right padded rows as alone"; else bad "T5 masked batch differs from alone"; fi
expect 0 "wrote" -- "$P" dump --weights "$W/t5.safetensors" --encoder-ids "5,6,7,8,9;1,5,6,7,8" --encoder-mask "1,1,1,1,1;0,1,1,1,1" \
  --decoder-ids "0,3,4;0,3,4" --out "$W/dt_mask2"
if close "$(npy_values "$W/dt_mask2/logits.npy" 0 303)" "$alone"; then ok "per-row decoder ids"; else bad "per-row decoder ids"; fi
expect 1 "encoder mask shape" -- "$P" dump --weights "$W/t5.safetensors" --encoder-ids "5,6,7" --encoder-mask "1,1" --out "$W/x"
expect 1 "encoder mask value .*0 or 1" -- "$P" dump --weights "$W/t5.safetensors" --encoder-ids "5,6,7" --encoder-mask "1,2,1" --out "$W/x"
expect 1 "hides every key.*row 1" -- "$P" dump --weights "$W/t5.safetensors" --encoder-ids "5,6;7,8" --encoder-mask "1,1;0,0" --out "$W/x"
expect 1 "token id rows of one length" -- "$P" dump --weights "$W/t5.safetensors" --encoder-ids "5,6;7" --out "$W/x"
expect 1 "one id row per item, or one for all" -- "$P" dump --weights "$W/t5.safetensors" --encoder-ids "5,6;7,8;9,9" --decoder-ids "0;0" --out "$W/x"

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
# Many labels go through the text tower 64 at a time; each gets the score it gets alone.
many="a house"; for i in $(seq 1 149); do many="$many|a cat $i"; done; many="$many|a tree"
"$P" embed "$IMG" --weights "$W/siglip.safetensors" --texts "$many" --tokenizer "$D/tokenizer.model" > "$W/zs_many.txt"
first=$(grep -E '  a house$' "$W/zs_many.txt"); last=$(grep -E '  a tree$' "$W/zs_many.txt")
if grep -q "3 batches" "$W/zs_many.txt" && [[ -n $first && $first == "$(sed -n 2p "$W/zs_ours.txt")" && $last == "$(sed -n 3p "$W/zs_ours.txt")" ]]; then
  ok "151 labels in 3 batches score as alone"; else bad "batched labels: '$first' '$last'"; cat "$W/zs_ours.txt"; fi
expect 1 "needs both SigLIP towers" -- "$P" embed "$IMG" --weights "$W/hfv/model.safetensors" --texts "a|b" --tokenizer "$D/tokenizer.model"
# The portable path when AMX is switched off (or absent): same commands, bf16 weights.
PALI3_NO_AMX=1 expect 0 "output: " -- "$P" caption "$IMG" "${F[@]}" --max-new-tokens 4 --dtype bf16

# Every command has --help, and every documented flag is accepted where it is documented.
for c in inspect make-demo make-scenes caption vqa detect segment generate embed dump bench init convert grad train eval help; do
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

# Gradients: pali3 grad on token ids written here as .npy (a few bytes of header, then int32s),
# the same numbers from our file and from its HF export, under each file's own names.
npy_i4() {  # npy_i4 FILE "(rows, cols)" v1 v2 ...: little-endian int32, C order
  local f=$1 shape=$2; shift 2
  local h="{'descr': '<i4', 'fortran_order': False, 'shape': $shape, }"
  while (( (10 + ${#h} + 1) % 64 != 0 )); do h+=" "; done
  { printf '\x93NUMPY\x01\x00'; printf "\\x$(printf %02x $(( (${#h} + 1) % 256 )))\\x$(printf %02x $(( (${#h} + 1) / 256 )))"
    printf '%s\n' "$h"
    for v in "$@"; do
      local u=$(( v & 0xffffffff ))
      printf "\\x$(printf %02x $((u & 255)))\\x$(printf %02x $(((u >> 8) & 255)))\\x$(printf %02x $(((u >> 16) & 255)))\\x$(printf %02x $(((u >> 24) & 255)))"
    done; } > "$f"
}
npy_i4 "$W/enc.npy" "(2, 4)" 5 6 7 8 9 10 11 1
npy_i4 "$W/mask.npy" "(2, 4)" 1 1 1 1 1 1 0 0
npy_i4 "$W/dec.npy" "(2, 3)" 0 3 4 0 12 13
npy_i4 "$W/tgt.npy" "(2, 3)" 3 4 1 12 -100 1
npy_i4 "$W/badmask.npy" "(2, 4)" 1 2 1 1 1 1 1 1
npy_i4 "$W/holemask.npy" "(2, 4)" 1 0 1 1 0 0 1 1
G=(--encoder-ids "$W/enc.npy" --encoder-mask "$W/mask.npy" --decoder-ids "$W/dec.npy" --targets "$W/tgt.npy")
for v in "" 10; do
  expect 0 "loss [0-9.]+ over 5 targets" -- "$P" grad --weights "$W/t5$v.safetensors" "${G[@]}" --out "$W/g_ours$v"
  expect 0 "wrote [0-9]+ gradients" -- "$P" grad --weights "$W/hft$v/model.safetensors" "${G[@]}" --out "$W/g_hf$v"
  if cmp -s "$W/g_ours$v/encoder.blocks.1.attn.q.weight.npy" "$W/g_hf$v/encoder.block.1.layer.0.SelfAttention.q.weight.npy" &&
     cmp -s "$W/g_ours$v/decoder.rel_bias.weight.npy" "$W/g_hf$v/decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight.npy" &&
     cmp -s "$W/g_ours$v/loss.npy" "$W/g_hf$v/loss.npy" && cmp -s "$W/g_ours$v/shared.weight.npy" "$W/g_hf$v/shared.weight.npy"; then
    ok "T5$v gradients identical under our names and HF names"; else bad "T5$v gradients differ between namings"; fi
done
if [[ ! -e "$W/g_hf10/lm_head.weight.npy" && -e "$W/g_hf/lm_head.weight.npy" ]]; then ok "tied T5 v1.0: one shared.weight gradient"; else bad "tied lm_head gradient"; fi
expect 0 "wrote" -- "$P" dump "$IMG" --weights "$W/siglip.safetensors" --out "$W/ds"
# Two-tower SigLIP in HF names (SiglipModel) in every command: dump, inspect, convert back.
expect 0 "wrote" -- "$P" dump "$IMG" --weights "$W/hfs/model.safetensors" --out "$W/ds_hf"
if diff -rq "$W/ds" "$W/ds_hf" >/dev/null && [[ -f "$W/ds_hf/vision.pooled.npy" ]]; then ok "SigLIP pair activations identical (ours vs HF SiglipModel)"; else bad "SigLIP pair dump differs"; fi
expect 0 "converted" -- "$P" convert "$W/hfs/model.safetensors" "$W/siglip_back.safetensors"
expect 0 "missing from the checkpoint: 0" -- "$P" inspect "$W/siglip_back.safetensors" --quiet
npy_i4 "$W/text.npy" "(1, 16)" 5 6 7 1 0 0 0 0 0 0 0 0 0 0 0 0
expect 0 "loss [0-9.]+ over 1 pairs" -- "$P" grad --weights "$W/hfs/model.safetensors" --pixels "$W/ds/vision.pixels.npy" --text-ids "$W/text.npy" --out "$W/g_sig"
if [[ -s "$W/g_sig/logit_bias.npy" && -s "$W/g_sig/vision_model.embeddings.patch_embedding.weight.npy" ]]; then ok "SigLIP gradients in HF names"; else bad "SigLIP gradient names"; ls "$W/g_sig" | head; fi
expect 1 "id out of range \(at .*badmask.npy, element 1\): expected 0..1, found 2" -- "$P" grad --weights "$W/t5.safetensors" \
  --encoder-ids "$W/enc.npy" --encoder-mask "$W/badmask.npy" --decoder-ids "$W/dec.npy" --targets "$W/tgt.npy"
expect 0 "loss [0-9.]+ over 5 targets" -- "$P" grad --weights "$W/t5.safetensors" --encoder-ids "$W/enc.npy" --encoder-mask "$W/holemask.npy" \
  --decoder-ids "$W/dec.npy" --targets "$W/tgt.npy" --out "$W/g_hole"
expect 1 "targets shape" -- "$P" grad --weights "$W/t5.safetensors" --encoder-ids "$W/enc.npy" --decoder-ids "$W/dec.npy" --targets "$W/enc.npy"
expect 1 "no loss for this model kind" -- "$P" grad --weights "$W/vit.safetensors" --pixels "$W/pixels.npy"

# Training: T5, SigLIP and PaLI-3 from JSONL examples; a resumed run ends where a straight one does.
mkdir -p "$W/data"; cp "$IMG" "$W/data/a.png"
for i in 1 2 3 4 5 6; do echo "{\"input\": \"copy $i\", \"target\": \"house $i\"}"; done > "$W/data/t5.jsonl"
for t in "a house" "a tree"; do echo "{\"image\": \"a.png\", \"prefix\": \"caption en\", \"suffix\": \"$t\", \"text\": \"$t\"}"; done > "$W/data/img.jsonl"
sed 's/"vocab":101/"vocab":1400/' "$W/t5cfg.json" > "$W/t5train.json"
TT=(--data "$W/data/t5.jsonl" --tokenizer "$D/tokenizer.model" --config "$W/t5train.json" --batch 2 --lr 3e-3 --warmup 2)
expect 0 "trained to step 6" -- "$P" train "${TT[@]}" --seed 1 --steps 6 --out "$W/run_straight"
expect 0 "trained to step 3" -- "$P" train "${TT[@]}" --seed 1 --steps 6 --out "$W/run_resumed" --save-every 3 --stop-at 3
expect 0 "step 5/6" -- "$P" train "${TT[@]}" --seed 1 --steps 6 --out "$W/run_resumed" --resume --stop-at 5
expect 0 "step 6/6" -- "$P" train "${TT[@]}" --seed 1 --steps 6 --out "$W/run_resumed" --resume
if cmp -s "$W/run_straight/model.safetensors" "$W/run_resumed/model.safetensors"; then ok "resumed training equals the straight run"; else bad "resumed training differs"; fi
if [[ $(wc -l < "$W/run_resumed/loss.csv") -eq 7 ]]; then ok "loss.csv has a header and 6 steps"; else bad "loss.csv"; cat "$W/run_resumed/loss.csv"; fi
expect 0 "trained to step 2" -- "$P" train --data "$W/data/img.jsonl" --tokenizer "$D/tokenizer.model" --config "$W/siglip.json" --batch 2 --steps 2 --out "$W/run_siglip"
expect 0 "trained to step 2" -- "$P" train --data "$W/data/img.jsonl" --tokenizer "$D/tokenizer.model" --init "$D/model.safetensors" --batch 2 --steps 2 --recompute --accumulate 2 --out "$W/run_pali3"
expect 0 "output: " -- "$P" caption "$IMG" --weights "$W/run_pali3/model.safetensors" --tokenizer "$D/tokenizer.model" --max-new-tokens 4
expect 1 "example field" -- "$P" train --data "$W/data/t5.jsonl" --tokenizer "$D/tokenizer.model" --config "$W/siglip.json" --steps 1 --out "$W/x"
# PaLI-3 from a pretrained SigLIP image tower (here its HF export), as in the PaLI-3 paper.
cat > "$W/pali3_on_siglip.json" <<'JSON'
{"model":"pali3","vision":{"width":32,"depth":2,"mlp":64,"heads":4,"patch":8,"image":32,"map_head":false},
 "text":{"vocab":1400,"d_model":32,"d_ff":64,"heads":4,"d_kv":8,"encoder_layers":1,"decoder_layers":1}}
JSON
expect 0 "image tower: 37 tensors from .*hfs/model.safetensors \\(vision" -- "$P" train --data "$W/data/img.jsonl" --tokenizer "$D/tokenizer.model" --config "$W/pali3_on_siglip.json" --init-vision "$W/hfs/model.safetensors" --batch 2 --steps 1 --out "$W/run_on_siglip"
expect 0 "<loc> rows from sinusoids in 2 token table" -- "$P" train --data "$W/data/img.jsonl" --tokenizer "$D/tokenizer.model" --config "$W/pali3_on_siglip.json" --loc-init ordinal --batch 2 --steps 1 --out "$W/run_loc"
expect 0 "frozen: 37 tensors under img\\." -- "$P" train --data "$W/data/img.jsonl" --tokenizer "$D/tokenizer.model" --config "$W/pali3_on_siglip.json" --init-vision "$W/hfs/model.safetensors" --freeze img. --batch 2 --steps 1 --out "$W/run_frozen"
expect 1 "--freeze matches no tensor" -- "$P" train --data "$W/data/img.jsonl" --tokenizer "$D/tokenizer.model" --config "$W/pali3_on_siglip.json" --freeze nothing. --batch 2 --steps 1 --out "$W/x"
expect 0 "learning rate x 0.2: [0-9]+ tensors under img\\." -- "$P" train --data "$W/data/img.jsonl" --tokenizer "$D/tokenizer.model" --config "$W/pali3_on_siglip.json" --lr-scale img.=0.2 --batch 2 --steps 1 --out "$W/run_lr_scale"
expect 1 "--lr-scale matches no trainable tensor" -- "$P" train --data "$W/data/img.jsonl" --tokenizer "$D/tokenizer.model" --config "$W/pali3_on_siglip.json" --lr-scale nothing.=0.5 --batch 2 --steps 1 --out "$W/x"
expect 1 "--lr-scale.*PREFIX=FACTOR" -- "$P" train --data "$W/data/img.jsonl" --tokenizer "$D/tokenizer.model" --config "$W/pali3_on_siglip.json" --lr-scale img.=fast --batch 2 --steps 1 --out "$W/x"
expect 1 "learning-rate scale.*a finite factor >= 0" -- "$P" train --data "$W/data/img.jsonl" --tokenizer "$D/tokenizer.model" --config "$W/pali3_on_siglip.json" --lr-scale img.=-1 --batch 2 --steps 1 --out "$W/x"
expect 1 "pretrained image tower of another shape" -- "$P" train --data "$W/data/img.jsonl" --tokenizer "$D/tokenizer.model" --init-vision "$W/hfs/model.safetensors" --preset pali3_tiny --steps 1 --out "$W/x"
expect 1 "two starting points" -- "$P" train --data "$W/data/img.jsonl" --tokenizer "$D/tokenizer.model" --init "$D/model.safetensors" --init-vision "$W/hfs/model.safetensors" --steps 1 --out "$W/x"
expect 1 "resuming with another seed" -- "$P" train "${TT[@]}" --steps 7 --out "$W/run_resumed" --resume --seed 2

# The world of shapes (docs/shapes.md): scenes with ground truth, scored by eval (random weights: ~0 %).
expect 0 "wrote 4 scenes .* and [0-9]+ training examples" -- "$P" make-scenes "$W/scenes" --count 4 --seed 2
if [[ -s "$W/scenes/000003.png" && $(wc -l < "$W/scenes/scenes.jsonl") -eq 4 && $(wc -l < "$W/scenes/siglip.jsonl") -eq 4 && -f "$W/scenes/siglip_single.jsonl" ]]; then ok "scene files"; else bad "scene files"; fi
expect 0 "^  count +[0-9.]+ % \\([0-9]+ / [0-9]+\\)" -- "$P" eval --scenes "$W/scenes" "${F[@]}" --max-new-tokens 8 --limit 2
expect 0 "^  VQA( +([0-9.]+ %|-))+$" -- "$P" eval --scenes "$W/scenes" "${F[@]}" --max-new-tokens 8 --limit 2
out=$("$P" eval --scenes "$W/scenes" "${F[@]}" --max-new-tokens 8 --limit 1 --json 2>/dev/null)
if [[ $out == '{"command":"eval","scenes":1,"caption":{"accuracy":'*'"detection":'*'"vqa":'*'"vqa_by_kind":{"count":'*'"by_objects":{"'*'}' ]]; then ok "eval --json"; else bad "eval --json: $out"; fi
expect 1 "cannot open ground truth" -- "$P" eval --scenes "$W/missing" "${F[@]}"
expect 0 "zero-shot top-1 over 12 texts .*single-object scenes" -- "$P" eval --scenes "$W/scenes" --weights "$W/siglip.safetensors" --tokenizer "$D/tokenizer.model"
# The shipped shapes SigLIP (examples/models/shapes/) on 300 fresh scenes: its zero-shot target.
S=$SRC/examples/models/shapes
"$P" make-scenes "$W/fresh" --count 300 --seed 4242 >/dev/null
acc=$("$P" eval --scenes "$W/fresh" --weights "$S/siglip.safetensors" --tokenizer "$S/tokenizer.model" --json | sed -n 's/.*"zero_shot":{"accuracy":\([0-9.e-]*\).*/\1/p')
if awk -v a="$acc" 'BEGIN { exit !(a >= 0.97) }'; then ok "shipped SigLIP zero-shot $acc >= 0.97"; else bad "shipped SigLIP zero-shot: '$acc'"; fi
# ... and on JPEGs (quality 85-95, hard edges): the spec's other pixels (docs/shapes.md)
expect 0 "wrote 300 scenes .*NNNNNN.jpg" -- "$P" make-scenes "$W/fresh_jpg" --count 300 --seed 4243 --no-antialias --jpeg 85 95
accj=$("$P" eval --scenes "$W/fresh_jpg" --weights "$S/siglip.safetensors" --tokenizer "$S/tokenizer.model" --json | sed -n 's/.*"zero_shot":{"accuracy":\([0-9.e-]*\).*/\1/p')
if awk -v a="$accj" 'BEGIN { exit !(a >= 0.97) }'; then ok "shipped SigLIP zero-shot on JPEGs $accj >= 0.97"; else bad "shipped SigLIP zero-shot on JPEGs: '$accj'"; fi
expect 1 "JPEG quality range \(at --jpeg\): expected LO <= HI, found 95 85" -- "$P" make-scenes "$W/x" --count 1 --jpeg 95 85
expect 1 "--jpeg" -- "$P" make-scenes "$W/x" --count 1 --jpeg 0 90
# The shipped shapes PaLI-3 on the same 300 fresh scenes: every task above a floor a little under
# what it scored when shipped (0.953, 0.997, 1, 1 here; docs/shapes.md), so that a change that
# breaks one task fails here.
js=$("$P" eval --scenes "$W/fresh" --weights "$S/pali3.safetensors" --tokenizer "$S/tokenizer.model" --json)
for tf in caption:0.92 detection:0.96 detection_absent:0.97 vqa:0.97; do
  t=${tf%%:*}; f=${tf#*:}
  a=$(grep -o "\"$t\":{\"accuracy\":[0-9.e-]*" <<<"$js" | head -1 | sed 's/.*://')
  if awk -v a="$a" -v f="$f" 'BEGIN { exit !(a >= f) }'; then ok "shipped PaLI-3 $t $a >= $f"; else bad "shipped PaLI-3 $t: '$a' (floor $f)"; fi
done
# ... and its masks (segment: 4 <loc> + 16 <seg> decoded by the shipped VQ-VAE), on the first 100
# of those scenes, with floors a little under its scores when shipped (0.990, 1, mean IoU 0.984).
js=$("$P" eval --scenes "$W/fresh" --limit 100 --weights "$S/pali3.safetensors" --tokenizer "$S/tokenizer.model" --vqvae "$S/vqvae.safetensors" --json)
for tf in segmentation:0.95 segmentation_absent:0.97; do
  t=${tf%%:*}; f=${tf#*:}
  a=$(grep -o "\"$t\":{\"accuracy\":[0-9.e-]*" <<<"$js" | head -1 | sed 's/.*://')
  if awk -v a="$a" -v f="$f" 'BEGIN { exit !(a >= f) }'; then ok "shipped PaLI-3 $t $a >= $f"; else bad "shipped PaLI-3 $t: '$a' (floor $f)"; fi
done
miou=$(grep -o '"mean_iou":[0-9.e-]*' <<<"$js" | sed 's/.*://')
if awk -v a="$miou" 'BEGIN { exit !(a >= 0.95) }'; then ok "shipped PaLI-3 mean mask IoU $miou >= 0.95"; else bad "shipped PaLI-3 mean mask IoU: '$miou'"; fi
expect 0 "mask for \"triangle\": [0-9]+ pixels" -- "$P" segment "$SRC/examples/data/shapes/000001.png" triangle --weights "$S/pali3.safetensors" --tokenizer "$S/tokenizer.model" --vqvae "$S/vqvae.safetensors" --out "$W/seg_shapes.png"
expect 1 "--vqvae with a SigLIP pair" -- "$P" eval --scenes "$W/scenes" --weights "$S/siglip.safetensors" --tokenizer "$S/tokenizer.model" --vqvae "$S/vqvae.safetensors"
out=$("$P" eval --scenes "$W/scenes" --weights "$W/siglip.safetensors" --tokenizer "$D/tokenizer.model" --json 2>/dev/null)
if [[ $out == '{"command":"eval","scenes":4,"zero_shot":{"accuracy":'*'}' ]]; then ok "eval --json of a SigLIP pair"; else bad "eval --json SigLIP: $out"; fi
# int8 weights (--dtype int8: every linear layer quantised on load): the shipped SigLIP keeps its
# target; the demo PaLI-3's second-step logits stay within cosine 0.99 of f32 (measured 0.9966 per
# row, 0.9983 per 32, where bf16 gives 0.9996: random weights, every error compounding); a bad
# group is named before loading.
acc8=$("$P" eval --scenes "$W/fresh" --weights "$S/siglip.safetensors" --tokenizer "$S/tokenizer.model" --dtype int8 --json | sed -n 's/.*"zero_shot":{"accuracy":\([0-9.e-]*\).*/\1/p')
if awk -v a="$acc8" 'BEGIN { exit !(a >= 0.97) }'; then ok "shipped SigLIP, int8: zero-shot $acc8 >= 0.97"; else bad "shipped SigLIP int8 zero-shot: '$acc8'"; fi
expect 1 "int8 group size \(at --int8-group\): expected 0 \(a scale per row\) or a multiple of 32, found 48" -- \
  "$P" eval --scenes "$W/fresh" --weights "$S/siglip.safetensors" --tokenizer "$S/tokenizer.model" --dtype int8 --int8-group 48
for g in 0 32; do
  expect 0 "int8 \(50 layers" -- "$P" dump "$IMG" "${F[@]}" --prompt "caption en" --decoder-ids 0,5 --dtype int8 --int8-group $g --threads 1 --out "$W/act8_$g"
done
"$P" dump "$IMG" "${F[@]}" --prompt "caption en" --decoder-ids 0,5 --threads 1 --out "$W/act32" >/dev/null
nl=$(npy_count "$W/act32/step1.text.logits.npy")
for g in 0 32; do
  cos=$(paste <(npy_values "$W/act32/step1.text.logits.npy" 0 "$nl") <(npy_values "$W/act8_$g/step1.text.logits.npy" 0 "$nl") |
    awk '{ab+=$1*$2; aa+=$1*$1; bb+=$2*$2} END{printf "%.6f", ab/sqrt(aa*bb)}')
  if awk -v c="$cos" 'BEGIN { exit !(c >= 0.99 && c < 1) }'; then ok "PaLI-3 int8 (group $g) logits: cosine $cos to f32"; else bad "PaLI-3 int8 logits cosine: '$cos'"; fi
done
expect 0 "output: " -- "$P" caption "$IMG" "${F[@]}" --max-new-tokens 4 --dtype int8 --threads 1
# int8 checkpoints (convert --dtype int8: I8 values + NAME_scale, the rest bf16): under half the
# f32 file; loaded with --dtype int8 they give the logits of quantising on load, bit for bit (the
# same values, not quantised twice); loaded as f32 they are the dequantised model.
expect 0 "converted .* int8" -- "$P" convert "$D/model.safetensors" "$W/int8_32.safetensors" --dtype int8 --int8-group 32
s8=$(stat -c %s "$W/int8_32.safetensors"); s32=$(stat -c %s "$D/model.safetensors")
if (( s8 * 2 < s32 )); then ok "int8 checkpoint $s8 bytes < half of f32's $s32"; else bad "int8 checkpoint size $s8 against f32 $s32"; fi
expect 0 "I8" -- "$P" inspect "$W/int8_32.safetensors"
expect 0 "int8 \(50 layers" -- "$P" dump "$IMG" --weights "$W/int8_32.safetensors" --tokenizer "$D/tokenizer.model" --prompt "caption en" \
  --decoder-ids 0,5 --dtype int8 --threads 1 --out "$W/act8_file"
if cmp -s "$W/act8_file/step1.text.logits.npy" "$W/act8_32/step1.text.logits.npy"; then ok "int8 checkpoint: the logits of quantising on load, bit for bit"; else bad "int8 checkpoint logits differ from quantising on load"; fi
"$P" dump "$IMG" --weights "$W/int8_32.safetensors" --tokenizer "$D/tokenizer.model" --prompt "caption en" --decoder-ids 0,5 --threads 1 --out "$W/act8_f32" >/dev/null
cos=$(paste <(npy_values "$W/act32/step1.text.logits.npy" 0 "$nl") <(npy_values "$W/act8_f32/step1.text.logits.npy" 0 "$nl") |
  awk '{ab+=$1*$2; aa+=$1*$1; bb+=$2*$2} END{printf "%.6f", ab/sqrt(aa*bb)}')
if awk -v c="$cos" 'BEGIN { exit !(c >= 0.99 && c < 1) }'; then ok "int8 checkpoint read as f32: logits cosine $cos"; else bad "int8 checkpoint as f32 logits cosine: '$cos'"; fi
expect 1 "int8 checkpoint naming \(at --naming\): expected pali3" -- "$P" convert "$D/model.safetensors" "$W/int8_hf.safetensors" --dtype int8 --naming hf
expect 0 "int8 \(50 layers, .*, per 64\)" -- "$P" bench --preset pali3_tiny --steps 2 --dtype int8 --int8-group 64 --threads 1

# Errors: exit 1 with a message that names the problem.
printf 'garbage' > "$W/bad.safetensors"
printf 'not an image' > "$W/bad.png"
expect 1 "truncated safetensors|header" -- "$P" inspect "$W/bad.safetensors"
expect 1 "unknown image type" -- "$P" caption "$W/bad.png" "${F[@]}"
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
# Robustness (issue 26): FIFOs and directories refused by name (no hang), failed writes reported,
# NaN flags refused, escape sequences in names printed escaped.
rm -f "$W/fifo.safetensors"; mkfifo "$W/fifo.safetensors"
expect 1 "found a FIFO" -- timeout 20 "$P" caption "$W/fifo.safetensors" "${F[@]}"
expect 1 "found a FIFO" -- timeout 20 "$P" caption "$IMG" --weights "$W/fifo.safetensors" --tokenizer "$D/tokenizer.model"
expect 1 "found a FIFO" -- timeout 20 "$P" caption "$IMG" --weights "$D/model.safetensors" --tokenizer "$W/fifo.safetensors"
expect 1 "found a directory" -- "$P" caption "$W" "${F[@]}"
if [[ -e /dev/full ]]; then expect 1 "cannot write PNG .*No space left" -- "$P" detect "$IMG" house "${F[@]}" --out /dev/full; fi
expect 1 "length penalty" -- "$P" caption "$IMG" "${F[@]}" --beam 2 --length-penalty nan
# Configs and requests checked before anything they imply is allocated (sizes cannot wrap).
sed 's/"depth":[0-9]*/"depth":10000000/' "$D/pali3_config.json" > "$W/deep.json"
sed 's/"image":[0-9]*/"image":8192/' "$D/pali3_config.json" > "$W/huge_image.json"
expect 1 "config does not fit the checkpoint .*needing at least [0-9]{11,} weights" -- timeout 20 "$P" caption "$IMG" "${F[@]}" --config "$W/deep.json"
expect 1 "config does not fit the checkpoint" -- timeout 20 "$P" inspect "$D/model.safetensors" --config "$W/deep.json"
expect 1 "image too large for the tower" -- timeout 20 "$P" caption "$IMG" "${F[@]}" --config "$W/huge_image.json"
expect 1 "more memory than allowed .*KV cache" -- "$P" caption "$IMG" "${F[@]}" --max-memory 0.001
expect 1 "more memory than allowed" -- "$P" train --data "$W/none.jsonl" --tokenizer "$D/tokenizer.model" --preset pali3_5b --max-memory 1
# A NaN in a checkpoint is refused by tensor name; --allow-nonfinite loads it anyway.
cp "$D/model.safetensors" "$W/nan.safetensors"
printf '\x00\x00\xc0\x7f' | dd of="$W/nan.safetensors" bs=1 seek=$(( $(stat -c %s "$W/nan.safetensors") - 4 )) conv=notrunc 2>/dev/null
expect 1 "non-finite weight \(at text\..*found 1 NaN/Inf" -- "$P" caption "$IMG" --weights "$W/nan.safetensors" --tokenizer "$D/tokenizer.model"
expect 0 "output: " -- "$P" caption "$IMG" --weights "$W/nan.safetensors" --tokenizer "$D/tokenizer.model" --allow-nonfinite --max-new-tokens 4
expect 1 "non-finite weight" -- "$P" convert "$W/nan.safetensors" "$W/nan_bf16.safetensors" --dtype bf16
# More rows of issue 26's table: every size and enumeration flag checked by the parser.
expect 1 "--steps: Value 288230376151711745 not in range" -- "$P" bench --preset pali3_tiny --steps 288230376151711745
expect 1 "--beam: Value 100000 not in range" -- "$P" caption "$IMG" "${F[@]}" --beam 100000
expect 1 "--max-new-tokens: Value 10000000 not in range" -- "$P" caption "$IMG" "${F[@]}" --max-new-tokens 10000000
expect 1 "--resolution: Value 9223372036854775808 not in range" -- "$P" caption "$IMG" "${F[@]}" --resolution 9223372036854775808
expect 1 "image too large for the tower" -- timeout 20 "$P" caption "$IMG" "${F[@]}" --resolution 8000
for cmd in "init $W/i4.safetensors --preset pali3_tiny" "convert $D/model.safetensors $W/i4.safetensors" "bench --preset pali3_tiny" "dump $IMG --weights $D/model.safetensors"; do
  expect 1 "--dtype: int4 not in" -- "$P" $cmd --dtype int4
done
expect 1 "Could not convert: --prepack = maybe" -- "$P" caption "$IMG" "${F[@]}" --prepack=maybe
if "$P" caption "$IMG" "${F[@]}" --max-new-tokens 2 --prepack=0 2>&1 | grep -q "prepack weights"; then bad "--prepack=0 prepacked"; else ok "--prepack=0 leaves prepacking off"; fi
if "$P" caption "$IMG" "${F[@]}" --max-new-tokens 2 --prepack=1 2>&1 | grep -q "prepack weights"; then ok "--prepack=1 prepacks"; else bad "--prepack=1 did not prepack"; fi
# The memory estimate in embed, dump and bench too.
expect 1 "more memory than allowed" -- "$P" bench --preset pali3_5b --max-memory 1
expect 1 "more memory than allowed" -- "$P" dump "$IMG" --weights "$D/model.safetensors" --tokenizer "$D/tokenizer.model" --out "$W/act_m" --max-memory 0.001
expect 1 "more memory than allowed" -- "$P" embed "$IMG" --weights "$W/siglip.safetensors" --max-memory 0.001
# NaN reaching activations (weights let through with --allow-nonfinite): an error naming the stage.
poke_nan() {  # FILE TENSOR: the tensor's first value becomes NaN
  local n off
  n=$(od -An -t u8 -N8 "$1" | tr -d ' ')
  off=$(head -c $((8 + n)) "$1" | tail -c "$n" | grep -o "\"$2\":{[^}]*}" | sed -E 's/.*"data_offsets":\[([0-9]+),.*/\1/')
  printf '\x00\x00\xc0\x7f' | dd of="$1" bs=1 seek=$((8 + n + off)) conv=notrunc 2>/dev/null
}
cp "$D/model.safetensors" "$W/nan_proj.safetensors"; poke_nan "$W/nan_proj.safetensors" projector.weight
expect 1 "non-finite activations \(at vision tower \+ projector output" -- "$P" caption "$IMG" --weights "$W/nan_proj.safetensors" --tokenizer "$D/tokenizer.model" --allow-nonfinite
cp "$W/siglip.safetensors" "$W/nan_siglip.safetensors"; poke_nan "$W/nan_siglip.safetensors" vision.head.attn.o.weight
expect 1 "non-finite activations \(at SigLIP image embedding" -- "$P" embed "$IMG" --weights "$W/nan_siglip.safetensors" --allow-nonfinite
# Paths reach the tokenizer trainer as values, never pasted into its flag string: a space, a comma
# or "--model_prefix=..." in a path is just part of the name.
mkdir -p "$W/with space"; cp "$SRC/examples/data/corpus.txt" "$W/with space/corp, --model_prefix=elsewhere"
expect 0 "RANDOM weights" -- "$P" make-demo "$W/with space/demo 1" --corpus "$W/with space/corp, --model_prefix=elsewhere"
if [[ -f "$W/with space/demo 1/tokenizer.model" && ! -e elsewhere.model && ! -e "$W/with space/elsewhere.model" ]]; then
  ok "make-demo: paths with spaces and flag-like text"; else bad "make-demo wrote elsewhere"; fi
out=$("$P" caption "$W/"$'\e[2J'"x.png" "${F[@]}" 2>&1); if [[ $out != *$'\e'* && $out == *'\x1b[2Jx.png'* ]]; then ok "escape sequences in a file name are printed escaped"; else bad "raw escape in: $out"; fi

echo "$fails failure(s)"
exit $((fails > 0))
