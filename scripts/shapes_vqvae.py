#!/usr/bin/env python3
"""The VQ-VAE of the shapes world's segmentation (docs/shapes.md): trains it on the masks of the
spec's shapes, writes it in the layout of big_vision's vae-oid (so `pali3 segment --vqvae` and
`pali3 eval --vqvae` load it like the real one), and turns scenes into `segment` training lines.

PaLI's mask format: the object's box is cut out of the full-image mask, resized to 64 x 64, and
encoded as a 4 x 4 grid of codes (the 16 `<seg###>` tokens after the 4 `<loc####>`); the decoder
turns 16 codes back into 64 x 64 logits (> 0: inside), which are resized into the decoded box.

  train  OUT.safetensors [--steps N --seed S]   train the VQ-VAE (encoder kept in the file too)
  encode VQVAE DIR...  --out FILE               one `segment` line per thing asked for, from each
                                                DIR/scenes.jsonl (image paths relative to FILE)

The decoder is the one of pali3/vision/vqvae.hpp (vae-oid's): conv1x1 E->W, ReLU, two residual
blocks (conv3x3, ReLU, conv3x3, ReLU, conv1x1, + skip), four ConvTranspose(4, 2, 1) + ReLU
(W -> W -> W/2 -> W/4 -> W/8), conv1x1 -> 1; here W = 32, E = 32, 128 codes. The encoder mirrors
it (four stride-2 convs, a residual block, conv1x1 -> E). Codes: nearest codebook row; training
by the straight-through estimator with the codebook and commitment losses (van den Oord et al.
2017), unused codes restarted from encoder outputs.

Needs Debian's python3-torch and python3-numpy: /usr/bin/python3 scripts/shapes_vqvae.py ..."""
import argparse
import json
import os
import random
import struct

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

SHAPES = ["circle", "square", "triangle"]
COLOURS = ["red", "green", "blue", "yellow"]
CODES, EMBED, WIDTH, GRID, SIDE = 128, 32, 32, 4, 64


# ---- masks -------------------------------------------------------------------------------------

def shape_mask(shape, s, ox=0.0, oy=0.0, n=4, pad=0):
    """Coverage (0..1) of an s x s pixel crop by the shape whose box starts at (ox, oy) inside
    the crop (sub-pixel offsets model other renderers), n x n samples per pixel (1: hard edges).
    `pad` extra pixels on each side."""
    side = s + 2 * pad
    t = (np.arange(side)[:, None] + (np.arange(n) + 0.5)[None, :] / n).reshape(-1) - pad  # sample coords
    y, x = np.meshgrid(t, t, indexing="ij")
    if shape == 0:
        cx, cy, r = ox + s / 2, oy + s / 2, s / 2
        inside = (x - cx) ** 2 + (y - cy) ** 2 <= r * r
    elif shape == 1:
        inside = (x >= ox) & (x < ox + s) & (y >= oy) & (y < oy + s)
    else:
        u = (y - oy) / s
        inside = (u >= 0) & (u <= 1) & (np.abs(x - (ox + s / 2)) <= s / 2 * u)
    return inside.reshape(side, n, side, n).mean(axis=(1, 3)).astype(np.float32)


def resize_64(crop):
    """Bilinear resize of a crop to 64 x 64 (half-pixel centres), values kept in [0, 1]."""
    t = torch.from_numpy(crop)[None, None]
    return F.interpolate(t, size=(SIDE, SIDE), mode="bilinear", align_corners=False)[0, 0].numpy()


def random_masks(count, rng):
    """Box crops of the spec's shapes, as PaLI makes its targets: side 14..26, anti-aliased or hard,
    the shape off the pixel grid by up to half a pixel (the box drawn around it rounded)."""
    out = np.empty((count, SIDE, SIDE), np.float32)
    for i in range(count):
        shape, s = rng.randrange(3), rng.randint(14, 26)
        n = 4 if rng.random() < 0.5 else 1
        ox, oy = (rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5)) if rng.random() < 0.5 else (0.0, 0.0)
        out[i] = resize_64(shape_mask(shape, s, ox, oy, n))
    return out


# ---- the model ---------------------------------------------------------------------------------

class Res(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(w, w, 3, padding=1), nn.ReLU(), nn.Conv2d(w, w, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(w, w, 1))

    def forward(self, x):
        return x + self.net(x)


class VQVAE(nn.Module):
    def __init__(self):
        super().__init__()
        w = WIDTH
        self.encoder = nn.Sequential(nn.Conv2d(1, w // 8, 4, 2, 1), nn.ReLU(), nn.Conv2d(w // 8, w // 4, 4, 2, 1), nn.ReLU(),
                                     nn.Conv2d(w // 4, w // 2, 4, 2, 1), nn.ReLU(), nn.Conv2d(w // 2, w, 4, 2, 1), nn.ReLU(),
                                     Res(w), nn.Conv2d(w, EMBED, 1))
        # indices as in vae-oid: decoder.0 conv, .1 ReLU, .2/.3 residual blocks, .4/.6/.8/.10
        # transposed convs with ReLUs between, .12 the output conv
        self.decoder = nn.Sequential(nn.Conv2d(EMBED, w, 1), nn.ReLU(), Res(w), Res(w),
                                     nn.ConvTranspose2d(w, w, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(w, w // 2, 4, 2, 1), nn.ReLU(),
                                     nn.ConvTranspose2d(w // 2, w // 4, 4, 2, 1), nn.ReLU(),
                                     nn.ConvTranspose2d(w // 4, w // 8, 4, 2, 1), nn.ReLU(), nn.Conv2d(w // 8, 1, 1))
        self.codebook = nn.Parameter(torch.randn(CODES, EMBED) * 0.1)

    def quantize(self, z):  # z (B, E, 4, 4) -> codes (B, 16)
        flat = z.permute(0, 2, 3, 1).reshape(-1, EMBED)
        d = (flat ** 2).sum(1, keepdim=True) - 2 * flat @ self.codebook.t() + (self.codebook ** 2).sum(1)[None]
        return d.argmin(1).reshape(z.shape[0], GRID * GRID), flat

    def decode_codes(self, codes):
        e = self.codebook[codes].reshape(-1, GRID, GRID, EMBED).permute(0, 3, 1, 2)
        return self.decoder(e)[:, 0]

    def encode(self, masks):  # (B, 64, 64) in [0, 1] -> (B, 16)
        return self.quantize(self.encoder(torch.as_tensor(masks)[:, None] * 2 - 1))[0]


def train(a):
    torch.manual_seed(a.seed)
    rng = random.Random(a.seed)
    m = VQVAE()
    data = torch.from_numpy(random_masks(a.examples, rng))
    opt = torch.optim.Adam(m.parameters(), lr=a.lr)
    use = torch.zeros(CODES)
    for step in range(1, a.steps + 1):
        x = data[torch.randint(0, len(data), (a.batch,))]
        z = m.encoder(x[:, None] * 2 - 1)
        codes, flat = m.quantize(z)
        e = m.codebook[codes.reshape(-1)]
        q = flat + (e - flat).detach()  # straight through
        recon = m.decoder(q.reshape(-1, GRID, GRID, EMBED).permute(0, 3, 1, 2))[:, 0]
        target = x * 2 - 1  # vae-oid's range: -1 outside, +1 inside
        rec = F.mse_loss(recon, target)
        loss = rec + F.mse_loss(e, flat.detach()) + 0.25 * F.mse_loss(flat, e.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
        use += torch.bincount(codes.reshape(-1), minlength=CODES).float()
        if step % 200 == 0:
            with torch.no_grad():  # restart codes unused in the last 200 steps at random encoder outputs
                dead = (use == 0).nonzero().reshape(-1)
                if len(dead) and step <= a.steps // 2:
                    m.codebook[dead] = flat[torch.randint(0, len(flat), (len(dead),))].detach()
            iou = ((recon > 0) & (x > 0.5)).sum().item() / max(1, ((recon > 0) | (x > 0.5)).sum().item())
            print(f"step {step:5d}  loss {loss.item():.4f}  recon mse {rec.item():.4f}  pixel IoU {iou:.4f}  codes used {(use > 0).sum().item()}",
                  flush=True)
            use.zero_()
    m.eval()
    held = torch.from_numpy(random_masks(2000, random.Random(a.seed + 1)))
    with torch.no_grad():
        recon = m.decode_codes(m.encode(held))
    inter = ((recon > 0) & (held > 0.5)).flatten(1).sum(1).float()
    union = ((recon > 0) | (held > 0.5)).flatten(1).sum(1).float()
    print(f"held-out masks (2000): mean IoU {(inter / union).mean().item():.4f}, min {(inter / union).min().item():.4f}")
    save(m, a.out)


# ---- files -------------------------------------------------------------------------------------

def save(m, path):
    tensors = {"_vq_vae._embedding": m.codebook.detach()}
    for k, v in m.decoder.state_dict().items():
        tensors["decoder." + k] = v
    for k, v in m.encoder.state_dict().items():
        tensors["encoder." + k] = v
    header, blobs, off = {"__metadata__": {"format": "pt", "made_by": "scripts/shapes_vqvae.py"}}, [], 0
    for k in sorted(tensors):
        b = tensors[k].contiguous().numpy().astype("<f4").tobytes()
        header[k] = {"dtype": "F32", "shape": list(tensors[k].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    print(f"wrote {path} ({off / 1e3:.0f} kB of tensors)")


def load(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    m = VQVAE()
    state = {}
    for k, t in header.items():
        if k == "__metadata__":
            continue
        b, e = t["data_offsets"]
        state[k] = torch.from_numpy(np.frombuffer(raw[8 + n + b:8 + n + e], "<f4").reshape(t["shape"]).copy())
    m.codebook.data = state.pop("_vq_vae._embedding")
    m.decoder.load_state_dict({k[len("decoder."):]: v for k, v in state.items() if k.startswith("decoder.")})
    m.encoder.load_state_dict({k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")})
    return m.eval()


def loc(v):
    return f"<loc{min(1023, max(0, round(v / SIDE * 1023))):04d}>"


def encode(a):
    m = load(a.vqvae)
    rng = random.Random(a.seed)
    lines, out_dir = [], os.path.dirname(os.path.abspath(a.out))
    for d in a.dirs:
        scenes = [json.loads(line) for line in open(os.path.join(d, "scenes.jsonl"))]
        for sc in scenes:
            objs = sc["objects"]
            # The object's mask as our generator draws it (anti-aliased coverage over its box).
            masks = [resize_64(shape_mask(SHAPES.index(o["shape"]), int(round(o["box"][2] - o["box"][0])))) for o in objs]
            with torch.no_grad():
                codes = m.encode(np.stack(masks)).tolist()
            seg = ["".join(f"<seg{c:03d}>" for c in cs) for cs in codes]

            def target(thing_of):
                parts = [loc(o["box"][0]) + loc(o["box"][1]) + loc(o["box"][2]) + loc(o["box"][3]) + seg[i] + " " + thing_of(o)
                         for i, o in enumerate(objs) if thing_of(o)]
                return " ; ".join(parts)

            pick = rng.choice(objs)
            asks = [pick["shape"], pick["color"] + " " + pick["shape"]]
            absent = [s for s in SHAPES if all(o["shape"] != s for o in objs)]
            if absent and rng.random() < 0.25:
                asks.append(rng.choice(absent))
            image = os.path.relpath(os.path.join(os.path.abspath(d), sc["image"]), out_dir)
            for thing in asks:
                t = target(lambda o: thing if thing in (o["shape"], o["color"] + " " + o["shape"]) else "")
                lines.append(json.dumps({"image": image, "prefix": "segment " + thing, "suffix": t, "text": sc["caption"]}))
    with open(a.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} segment lines to {a.out}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("out")
    t.add_argument("--steps", type=int, default=3000)
    t.add_argument("--batch", type=int, default=64)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--examples", type=int, default=20000)
    t.add_argument("--seed", type=int, default=1)
    e = sub.add_parser("encode")
    e.add_argument("vqvae")
    e.add_argument("dirs", nargs="+")
    e.add_argument("--out", required=True)
    e.add_argument("--seed", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    train(a) if a.cmd == "train" else encode(a)


if __name__ == "__main__":
    main()
