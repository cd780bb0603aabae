#!/usr/bin/env python3
"""Writes the Pillow reference files of tests/vision/test_pil_resize.cpp (committed; rerun only to
change them): tests/data/pil/source.png, a 53 x 41 RGB image (noise over a gradient, with a sharp
edge so the bicubic lobes clip), and for each filter and size the bytes Pillow's
Image.resize((w, h), filter) gives, as raw (h, w, 3) uint8 files named FILTER_WxH.bin.
Needs Debian's python3-pil and python3-numpy:  /usr/bin/python3 scripts/make_pil_reference.py"""
import pathlib

import numpy as np
from PIL import Image

out = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "pil"
out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(2026)
h, w = 41, 53
y, x = np.mgrid[0:h, 0:w]
base = np.stack([x * 255 / (w - 1), y * 255 / (h - 1), (x + y) * 255 / (w + h - 2)], axis=-1)
base[:, 30:] = 255 - base[:, 30:]  # a sharp vertical edge
img = np.clip(base + rng.normal(0, 40, base.shape), 0, 255).astype(np.uint8)
Image.fromarray(img).save(out / "source.png")
sizes = [(16, 16), (24, 24), (31, 17), (70, 45), (53, 20), (24, 41)]  # down, square, mixed, up, one axis each
for name, code in (("bicubic", Image.BICUBIC), ("bilinear", Image.BILINEAR)):
    for sw, sh in sizes:
        r = np.asarray(Image.open(out / "source.png").convert("RGB").resize((sw, sh), code), dtype=np.uint8)
        (out / f"{name}_{sw}x{sh}.bin").write_bytes(r.tobytes())
print("wrote", out)
