#!/usr/bin/env python3
"""A second renderer of the world of shapes (docs/shapes.md), written from the spec alone with
PIL's drawing primitives: sub-pixel object positions, edges anti-aliased by 4x supersampling or
not, Gaussian noise, PNG or JPEG. It writes the same files as `pali3 make-scenes` (DIR/NNNNNN.png
or .jpg and DIR/scenes.jsonl), so `pali3 eval --scenes DIR` scores a model on pixels our
generator never drew.

  python3 scripts/shapes_pil.py DIR [--count 500] [--seed 7] [--jpeg] [--no-antialias]

Needs Debian's python3-pil and python3-numpy (reference data only; nothing at run time)."""
import argparse
import json
import os
import random

import numpy as np
from PIL import Image, ImageDraw

SIDE = 64
SHAPES = ["circle", "square", "triangle"]
COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (230, 200, 40)}


def apart(a, b, gap=2.0):
    return a["x2"] + gap <= b["x1"] or b["x2"] + gap <= a["x1"] or a["y2"] + gap <= b["y1"] or b["y2"] + gap <= a["y1"]


def draw(objects, grey, antialias, noise, rng):
    scale = 4 if antialias else 1
    img = Image.new("RGB", (SIDE * scale, SIDE * scale), (grey, grey, grey))
    d = ImageDraw.Draw(img)
    for o in objects:
        x1, y1, x2, y2 = (v * scale for v in (o["x1"], o["y1"], o["x2"], o["y2"]))
        fill = tuple(o["rgb"])
        if o["shape"] == "circle":
            d.ellipse([x1, y1, x2 - 1, y2 - 1], fill=fill)
        elif o["shape"] == "square":
            d.rectangle([x1, y1, x2 - 1, y2 - 1], fill=fill)
        else:
            d.polygon([((x1 + x2) / 2, y1), (x2, y2), (x1, y2)], fill=fill)
    if antialias:
        img = img.resize((SIDE, SIDE), Image.BOX)
    px = np.asarray(img).astype(np.float32)
    if noise > 0:
        px = px + rng.normal(0.0, noise, px.shape)
    return Image.fromarray(np.clip(np.rint(px), 0, 255).astype(np.uint8))


def scene(r, rng, antialias):
    grey = r.randint(190, 240)
    count = r.randint(1, 3)
    objects = []
    for _ in range(1000):
        if len(objects) == count:
            break
        s = r.uniform(14.0, 26.0)
        x0, y0 = r.uniform(0.0, SIDE - s), r.uniform(0.0, SIDE - s)
        colour = r.choice(list(COLOURS))
        o = {"shape": r.choice(SHAPES), "color": colour, "x1": x0, "y1": y0, "x2": x0 + s, "y2": y0 + s,
             "rgb": [min(255, max(0, c + r.randint(-12, 12))) for c in COLOURS[colour]]}
        if all(apart(o, p) for p in objects):
            objects.append(o)
    objects.sort(key=lambda o: (o["x1"] + o["x2"]) / 2)
    names = ["a %s %s" % (o["color"], o["shape"]) for o in objects]
    caption = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    qa = [{"question": "how many shapes are there?", "answer": str(len(objects))}]
    for s in SHAPES:
        hits = [o for o in objects if o["shape"] == s]
        if len(hits) == 1:
            qa.append({"question": "what color is the %s?" % s, "answer": hits[0]["color"]})
    for c in COLOURS:
        hits = [o for o in objects if o["color"] == c]
        if len(hits) == 1:
            qa.append({"question": "what shape is %s?" % c, "answer": hits[0]["shape"]})
    image = draw(objects, grey, antialias, r.uniform(0.0, 4.0), rng)
    truth = [{"shape": o["shape"], "color": o["color"], "box": [round(o[k], 2) for k in ("y1", "x1", "y2", "x2")]}
             for o in objects]
    return image, truth, caption, qa


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--jpeg", action="store_true", help="JPEG at quality 85..95 instead of PNG")
    ap.add_argument("--no-antialias", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    r, rng = random.Random(a.seed), np.random.default_rng(a.seed)
    with open(os.path.join(a.dir, "scenes.jsonl"), "w") as f:
        for i in range(a.count):
            image, truth, caption, qa = scene(r, rng, not a.no_antialias)
            name = "%06d.%s" % (i, "jpg" if a.jpeg else "png")
            if a.jpeg:
                image.save(os.path.join(a.dir, name), quality=r.randint(85, 95))
            else:
                image.save(os.path.join(a.dir, name))
            f.write(json.dumps({"image": name, "objects": truth, "caption": caption, "qa": qa}) + "\n")
    print("wrote %d scenes (%s, %s) to %s" % (a.count, "JPEG" if a.jpeg else "PNG",
                                              "anti-aliased" if not a.no_antialias else "aliased", a.dir))


if __name__ == "__main__":
    main()
