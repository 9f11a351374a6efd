"""The UNet of src/models/unet.ts in PyTorch, with the same parameter names, shapes and float32
numerics: sinusoidal time embedding (t * timeScale, sines then cosines, frequencies computed in
float64 and rounded to float32 once), class embedding with the null class at index numClasses,
GroupNorm (eps 1e-5), SiLU, single-head attention scaled by 1/sqrt(C), nearest 2x upsampling, and a
zero-initialised output convolution. Built from the ``config`` stored in a checkpoint's metadata.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_TIME_SCALE = 1000.0
DEFAULT_MAX_PERIOD = 10000.0

_MNIST = {"inChannels": 1, "imageSize": 28, "numClasses": 10}
# src/models/unet.ts unetPresets (key order as ours writes them into checkpoints)
PRESETS: Dict[str, dict] = {
    "tiny": {**_MNIST, "baseChannels": 8, "channelMults": [1, 2, 2], "numResBlocks": 1, "attentionAtLowest": False, "groups": 4},
    "small": {**_MNIST, "baseChannels": 12, "channelMults": [1, 2, 2], "numResBlocks": 1, "attentionAtLowest": False, "groups": 4},
    "base": {**_MNIST, "baseChannels": 64, "channelMults": [1, 2, 2], "numResBlocks": 2, "attentionAtLowest": True, "groups": 32},
}


def timestep_embedding(t: torch.Tensor, dim: int, scale: float = DEFAULT_TIME_SCALE, max_period: float = DEFAULT_MAX_PERIOD) -> torch.Tensor:
    half = dim // 2
    freqs = torch.tensor([scale * math.exp(-math.log(max_period) * i / half) for i in range(half)], dtype=torch.float64).to(torch.float32)
    args = t.to(torch.float32).reshape(-1, 1) * freqs.to(t.device)
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb_dim: int, groups: int):
        super().__init__()
        self.out_channels = cout
        self.norm1 = nn.GroupNorm(groups, cin, eps=1e-5)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=1e-5)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: torch.Tensor, emb_act: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb_act).reshape(-1, self.out_channels, 1, 1)
        h = self.conv2(F.silu(self.norm2(h)))
        return h + (self.skip(x) if self.skip is not None else x)


class AttentionBlock(nn.Module):
    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=1e-5)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3 * c, h * w)
        q, k, v = qkv[:, :c], qkv[:, c : 2 * c], qkv[:, 2 * c :]
        attn = torch.softmax(torch.bmm(q.transpose(1, 2), k) * (1 / math.sqrt(c)), dim=-1)  # [b, n, n]
        out = torch.bmm(v, attn.transpose(1, 2)).reshape(b, c, h, w)
        return x + self.proj(out)


class Downsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


def validate_config(cfg: dict) -> None:
    need = ["inChannels", "imageSize", "baseChannels", "channelMults", "numResBlocks", "attentionAtLowest", "numClasses", "groups"]
    missing = [k for k in need if k not in cfg]
    if missing:
        raise ValueError(f"UNet config is missing {', '.join(missing)} (is this a distillkac UNet checkpoint?)")
    for k in ("inChannels", "imageSize", "baseChannels", "numResBlocks", "groups"):
        if not isinstance(cfg[k], int) or cfg[k] < 1:
            raise ValueError(f"UNet: {k} must be an integer >= 1, got {cfg[k]!r}")
    size = cfg["imageSize"]
    for i in range(len(cfg["channelMults"]) - 1):
        if size % 2:
            raise ValueError(f"UNet: level {i} is {size}x{size}; every level but the last must have an even size")
        size //= 2


def plan(cfg: dict):
    validate_config(cfg)
    base = cfg["baseChannels"]
    mults = cfg["channelMults"]
    last = len(mults) - 1
    down, up, skips = [], [], [base]
    ch = base
    for level, m in enumerate(mults):
        attn = bool(cfg["attentionAtLowest"]) and level == last
        for _ in range(cfg["numResBlocks"]):
            down.append(("res", ch, base * m, attn))
            ch = base * m
            skips.append(ch)
        if level < last:
            down.append(("down", ch))
            skips.append(ch)
    mid = ch
    pending = list(skips)
    for level in range(last, -1, -1):
        attn = bool(cfg["attentionAtLowest"]) and level == last
        cout = base * mults[level]
        for _ in range(cfg["numResBlocks"] + 1):
            up.append(("res", ch + pending.pop(), cout, attn))
            ch = cout
        if level > 0:
            up.append(("up", ch))
    return down, mid, up, skips, 4 * base


class UNet(nn.Module):
    """u_theta(x, t, y). Parameter names equal ours: timeMlp1, classEmb, down.3.conv1, upAttn.7.qkv, ..."""

    def __init__(self, config: dict):
        super().__init__()
        self.config = dict(config)
        down, mid, up, skips, emb_dim = plan(self.config)
        base, groups = self.config["baseChannels"], self.config["groups"]
        for ch in set(skips) | {s[1] for s in up if s[0] == "res"}:
            if ch % groups:
                raise ValueError(f"UNet: GroupNorm groups {groups} do not divide {ch} channels")
        self.num_classes = self.config["numClasses"]
        self.time_scale = float(self.config.get("timeScale", DEFAULT_TIME_SCALE))
        self.timeMlp1 = nn.Linear(base, emb_dim)
        self.timeMlp2 = nn.Linear(emb_dim, emb_dim)
        self.classEmb = nn.Embedding(self.num_classes + 1, emb_dim)
        self.inConv = nn.Conv2d(self.config["inChannels"], base, 3, padding=1)
        self.down = nn.ModuleList([ResBlock(s[1], s[2], emb_dim, groups) if s[0] == "res" else Downsample(s[1]) for s in down])
        self.downAttn = nn.ModuleDict({str(i): AttentionBlock(s[2], groups) for i, s in enumerate(down) if s[0] == "res" and s[3]})
        self.mid1 = ResBlock(mid, mid, emb_dim, groups)
        self.midAttn = AttentionBlock(mid, groups) if self.config["attentionAtLowest"] else None
        self.mid2 = ResBlock(mid, mid, emb_dim, groups)
        self.up = nn.ModuleList([ResBlock(s[1], s[2], emb_dim, groups) if s[0] == "res" else Upsample(s[1]) for s in up])
        self.upAttn = nn.ModuleDict({str(i): AttentionBlock(s[2], groups) for i, s in enumerate(up) if s[0] == "res" and s[3]})
        self.outNorm = nn.GroupNorm(groups, base, eps=1e-5)
        self.outConv = nn.Conv2d(base, self.config["inChannels"], 3, padding=1)
        nn.init.zeros_(self.outConv.weight)
        nn.init.zeros_(self.outConv.bias)

    def embedding(self, t: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        if y is None:
            y = torch.full((t.shape[0],), self.num_classes, dtype=torch.long, device=t.device)
        if ((y < 0) | (y > self.num_classes)).any():
            raise ValueError(f"UNet: labels must be in 0..{self.num_classes} ({self.num_classes} = null class)")
        temb = timestep_embedding(t, self.config["baseChannels"], self.time_scale)
        return self.timeMlp2(F.silu(self.timeMlp1(temb))) + self.classEmb(y.long())

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        c, s = self.config["inChannels"], self.config["imageSize"]
        if x.dim() != 4 or tuple(x.shape[1:]) != (c, s, s):
            raise ValueError(f"UNet: expects x [B, {c}, {s}, {s}], got {list(x.shape)}")
        if t.dim() != 1 or t.shape[0] != x.shape[0]:
            raise ValueError(f"UNet: t must have shape [{x.shape[0]}], got {list(t.shape)}")
        emb_act = F.silu(self.embedding(t, y))
        h = self.inConv(x)
        skips: List[torch.Tensor] = [h]
        for i, block in enumerate(self.down):
            if isinstance(block, ResBlock):
                h = block(h, emb_act)
                if str(i) in self.downAttn:
                    h = self.downAttn[str(i)](h)
            else:
                h = block(h)
            skips.append(h)
        h = self.mid1(h, emb_act)
        if self.midAttn is not None:
            h = self.midAttn(h)
        h = self.mid2(h, emb_act)
        for i, block in enumerate(self.up):
            if isinstance(block, ResBlock):
                h = block(torch.cat([h, skips.pop()], dim=1), emb_act)
                if str(i) in self.upAttn:
                    h = self.upAttn[str(i)](h)
            else:
                h = block(h)
        return self.outConv(F.silu(self.outNorm(h)))


def unet_config_for(preset: str, channels: int = 1, image_size: int = 28, num_classes: int = 10) -> dict:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset '{preset}': use {', '.join(PRESETS)}")
    return {**PRESETS[preset], "inChannels": channels, "imageSize": image_size, "numClasses": num_classes}


def model_from_config(run_config: dict) -> UNet:
    """The model of a run config (a checkpoint's ``config``)."""
    m = (run_config or {}).get("model")
    if not isinstance(m, dict) or m.get("kind") != "unet" or not isinstance(m.get("unet"), dict):
        raise ValueError("the checkpoint has no model.unet configuration; it was not written by distillkac train/distill or train_ddp.py")
    return UNet(m["unet"])
