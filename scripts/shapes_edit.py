#!/usr/bin/env python3
"""Edits an f32 safetensors checkpoint the way the shapes PaLI-3 recipe does between stages
(docs/shapes.md, "Recipe: a tiny PaLI-3 that finds boxes"), writing a new file; metadata is kept.

  --add-sincos ALPHA     add ALPHA x the 2-D sin-cos table (big_vision's posemb_sincos_2d,
                         temperature 10000) to img.pos_embedding.weight
  --scale NAME_REGEX K   multiply every tensor whose name matches by K (repeatable), e.g.
                         --scale '^img\\.pos_embedding\\.weight$' 4
                         --scale '^text\\.encoder\\.blocks\\.\\d+\\.(attn\\.o|mlp\\.wo)\\.weight$' 0.2

  /usr/bin/python3 scripts/shapes_edit.py IN.safetensors OUT.safetensors [edits...]
Needs numpy."""
import argparse
import json
import re
import struct

import numpy as np


def sincos_2d(grid, width, temperature=10000.0):
    if width % 4:
        raise SystemExit(f"the sin-cos table needs a width divisible by 4, found {width}")
    q = width // 4
    y, x = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    omega = 1.0 / temperature ** (np.arange(q) / (q - 1))
    xs = x.reshape(-1)[:, None] * omega[None]
    ys = y.reshape(-1)[:, None] * omega[None]
    return np.concatenate([np.sin(xs), np.cos(xs), np.sin(ys), np.cos(ys)], axis=1).astype(np.float32)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--add-sincos", type=float, metavar="ALPHA")
    p.add_argument("--scale", nargs=2, action="append", default=[], metavar=("NAME_REGEX", "K"))
    a = p.parse_args()
    with open(a.src, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    data = bytearray(raw[8 + n:])

    def tensor(name):
        t = header[name]
        if t["dtype"] != "F32":
            raise SystemExit(f"{name} is {t['dtype']}: edit the f32 checkpoint (pali3 train writes f32)")
        b, e = t["data_offsets"]
        return b, e, np.frombuffer(bytes(data[b:e]), dtype=np.float32).reshape(t["shape"]).copy()

    edited = []
    if a.add_sincos is not None:
        name = "img.pos_embedding.weight"
        if name not in header:
            raise SystemExit(f"{a.src} has no {name} (a PaLI-3 checkpoint in our naming is expected)")
        b, e, w = tensor(name)
        grid = int(round(np.sqrt(w.shape[0])))
        if grid * grid != w.shape[0]:
            raise SystemExit(f"{name}: {w.shape[0]} rows is not a square grid")
        data[b:e] = (w + a.add_sincos * sincos_2d(grid, w.shape[1])).astype(np.float32).tobytes()
        edited.append(f"{name} += {a.add_sincos} x sincos")
    for pattern, k in a.scale:
        rx = re.compile(pattern)
        names = [m for m in header if m != "__metadata__" and rx.search(m)]
        if not names:
            raise SystemExit(f"no tensor matches {pattern!r}")
        for name in names:
            b, e, w = tensor(name)
            data[b:e] = (w * float(k)).astype(np.float32).tobytes()
            edited.append(f"{name} x {k}")
    with open(a.dst, "wb") as f:
        f.write(raw[:8 + n] + bytes(data))
    print(f"wrote {a.dst}: " + "; ".join(edited))


if __name__ == "__main__":
    main()
