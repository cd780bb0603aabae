#!/usr/bin/env python3
"""Where a shapes PaLI-3 loses the positions detection needs (docs/shapes.md, "Why boxes are hard").

Two measurements on scenes with ground truth (`pali3 make-scenes`), both through `pali3 dump`:
  1. Teacher-forced negative log-likelihood of each of the four <loc> tokens of `detect SHAPE` on
     single-object scenes (nats; 4.16 = uniform over the 64 pixel rows a box edge can take). A
     model that localises has a low NLL on the first two (y_min, x_min); y_max and x_max follow
     from them and the object's size.
  2. A linear probe of each image token's grid row and column (shared weights over tokens, fit on
     half the scenes, R^2 on the other half) at every stage the decoder's cross-attention depends
     on: after the position table, after the image tower, after the projector, after the text
     encoder. R^2 near 0 at a stage means that stage's token features no longer say where they are.
  3. The same kind of probe for colour: a linear classifier (least squares on one-hot targets) of
     the colour of the object under each token's centre, on the tokens that lie inside an object;
     accuracy on the held-out half (25 % = chance over the four colours). A stage whose tokens no
     longer say the colour explains captions and answers with the wrong colour. And for the
     object's shape (33 % = chance over the three shapes).

  /usr/bin/python3 scripts/shapes_diagnose.py CHECKPOINT SCENES_DIR TOKENIZER [--pali3 build/gcc/tools/pali3]
Needs numpy (Debian: python3-numpy)."""
import argparse
import json
import os
import subprocess
import tempfile

import numpy as np


def dump(a, image, prompt, decoder_ids, out):
    subprocess.run([a.pali3, "dump", image, "--weights", a.checkpoint, "--tokenizer", a.tokenizer, "--prompt", prompt,
                    "--decoder-ids", ",".join(map(str, decoder_ids)), "--out", out, "--threads", str(a.threads)],
                   check=True, capture_output=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("scenes", help="directory with scenes.jsonl and its PNGs")
    p.add_argument("tokenizer", help="the world's tokenizer (64 pieces; <loc i> is id 64 + i)")
    p.add_argument("--pali3", default="build/gcc/tools/pali3")
    p.add_argument("--scenes-nll", type=int, default=24, help="single-object scenes for the NLL")
    p.add_argument("--scenes-probe", type=int, default=120, help="scenes for the probe")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    with open(os.path.join(a.scenes, "scenes.jsonl")) as f:
        scenes = [json.loads(line) for line in f]
    vocab_pieces = 64  # pali3 make-scenes --tokenizer: 64 pieces, then PaLI's 1024 <loc> ids
    tmp = tempfile.mkdtemp(prefix="shapes_diagnose_")

    nll = []
    for s in [s for s in scenes if len(s["objects"]) == 1][:a.scenes_nll]:
        o = s["objects"][0]
        bins = [round(v / 64 * 1023) for v in o["box"]]
        dec = [0] + [vocab_pieces + b for b in bins]
        dump(a, os.path.join(a.scenes, s["image"]), "detect " + o["shape"], dec, tmp)
        row = []
        for k in range(4):
            lg = np.load(os.path.join(tmp, f"step{k}.text.logits.npy")).ravel().astype(np.float64)
            lse = lg.max() + np.log(np.exp(lg - lg.max()).sum())
            row.append(lse - lg[dec[k + 1]])
        nll.append(row)
    nll = np.array(nll)
    print(f"teacher-forced NLL of the <loc> tokens ({len(nll)} single-object scenes; uniform over 64 rows = 4.16 nats):")
    for k, name in enumerate(("y_min", "x_min", "y_max", "x_max")):
        print(f"  {name}: {nll[:, k].mean():.2f}")

    stages = [("after the position table", "img.pos_embedding_out"), ("after the image tower", "img.encoder.norm_out"),
              ("after the projector", "projector_out"), ("after the text encoder", "text.encoder.norm_out")]
    feats = {n: [] for _, n in stages}
    grid = None
    colours = []  # per scene, per token: colour index of the object under the token's centre, -1 for none
    shapes = []   # the same for its shape
    names = ["red", "green", "blue", "yellow"]
    shape_names = ["circle", "square", "triangle"]
    for s in scenes[:a.scenes_probe]:
        dump(a, os.path.join(a.scenes, s["image"]), "detect circle", [0], tmp)
        for _, n in stages:
            x = np.load(os.path.join(tmp, n + ".npy"))
            x = x.reshape(-1, x.shape[-1])
            if grid is None:
                first = np.load(os.path.join(tmp, "img.pos_embedding_out.npy"))
                grid = int(round(np.sqrt(first.reshape(-1, first.shape[-1]).shape[0])))
            feats[n].append(x[:grid * grid])
        lab = np.full(grid * grid, -1)
        shp = np.full(grid * grid, -1)
        for o in s["objects"]:
            y1, x1, y2, x2 = o["box"]
            for t in range(grid * grid):
                cy, cx = (t // grid + 0.5) * 64 / grid, (t % grid + 0.5) * 64 / grid
                if y1 <= cy < y2 and x1 <= cx < x2:
                    lab[t] = names.index(o["color"])
                    shp[t] = shape_names.index(o["shape"])
        colours.append(lab)
        shapes.append(shp)
    rows = np.repeat(np.arange(grid), grid)
    cols = np.tile(np.arange(grid), grid)
    print(f"linear probe of each image token's grid position ({grid} x {grid} tokens, {a.scenes_probe} scenes, R^2 on held-out half):")
    for label, n in stages:
        x = np.concatenate(feats[n]).astype(np.float64)
        x = np.hstack([x, np.ones((len(x), 1))])
        half = len(x) // 2
        r2 = []
        for target in (np.tile(rows, len(feats[n])), np.tile(cols, len(feats[n]))):
            w = np.linalg.lstsq(x[:half], target[:half], rcond=None)[0]
            pred = x[half:] @ w
            r2.append(1 - ((pred - target[half:]) ** 2).mean() / target[half:].var())
        print(f"  {label:<26} row {r2[0]:6.3f}  column {r2[1]:6.3f}")
    for what, per_scene, classes in (("colour", colours, len(names)), ("shape", shapes, len(shape_names))):
        lab = np.concatenate(per_scene)
        inside = lab >= 0
        print(f"linear probe of the {what} under each token ({inside.sum()} tokens inside objects; accuracy on held-out half, "
              f"chance {100 / classes:.0f} %):")
        for label, n in stages:
            x = np.concatenate(feats[n]).astype(np.float64)[inside]
            x = np.hstack([x, np.ones((len(x), 1))])
            y = lab[inside]
            half = len(x) // 2
            w = np.linalg.lstsq(x[:half], np.eye(classes)[y[:half]], rcond=None)[0]
            acc = ((x[half:] @ w).argmax(1) == y[half:]).mean()
            print(f"  {label:<26} {100 * acc:5.1f} %")


if __name__ == "__main__":
    main()
