"""Sampling as src/models/sampler.ts and generate.ts do it: integrate dx/dt = u(x, t) backwards from
T to t_min on a uniform grid with Euler, AB-2, midpoint or Heun, in float32 (times computed in
float64 and rounded once, step sizes rounded to float32), with classifier-free guidance
u_w = u_null + w (u_cond - u_null) evaluated in one batched forward pass; results clamped to [-1, 1].
"""
from __future__ import annotations

from typing import Optional

import torch

from .kac import KacConfig, kac_prior

SOLVERS = ("euler", "ab2", "midpoint", "heun")
NFE_PER_STEP = {"euler": 1, "ab2": 1, "midpoint": 2, "heun": 2}
DEFAULT_GUIDANCE = 1.5


def _f32(v: float) -> float:
    return float(torch.tensor(v, dtype=torch.float32))


def guided_velocity(model, x, t, labels, guidance: Optional[float] = None, null_class: Optional[int] = None):
    if guidance is None or guidance == 1:
        return model(x, t, labels)
    b = x.shape[0]
    nulls = torch.full_like(labels, null_class if null_class is not None else model.num_classes)
    both = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, nulls]))
    cond, uncond = both[:b], both[b:]
    return uncond + _f32(guidance) * (cond - uncond)


@torch.no_grad()
def integrate(model, x, t_start: float, dt: float, steps: int, solver: str, labels, guidance=None, null_class=None):
    """From t_start down to t_start - steps * dt; returns (x, nfe)."""
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}: use one of {', '.join(SOLVERS)}")
    b = x.shape[0]

    def times(k: int, offset: float = 0.0):
        return torch.full((b,), t_start - k * dt - offset, dtype=torch.float64).to(torch.float32).to(x.device)

    def u(xx, tt):
        return guided_velocity(model, xx, tt, labels, guidance, null_class)

    dt32, half32 = _f32(dt), _f32(dt / 2)
    prev = None
    nfe = 0
    for k in range(steps):
        u1 = u(x, times(k))
        nfe += 1
        if solver == "euler":
            x = x - dt32 * u1
        elif solver == "ab2":
            x = x - dt32 * (1.5 * u1 - 0.5 * prev) if prev is not None else x - dt32 * u1
            prev = u1
        elif solver == "midpoint":
            xm = x - half32 * u1
            nfe += 1
            x = x - dt32 * u(xm, times(k, dt / 2))
        else:  # heun
            xe = x - dt32 * u1
            nfe += 1
            x = x - half32 * (u1 + u(xe, times(k + 1)))
    return x, nfe


@torch.no_grad()
def sample(model, labels, steps: int, solver: str = "euler", kac: KacConfig = KacConfig(), t_min: float = 1e-5,
           guidance: Optional[float] = None, prior: Optional[torch.Tensor] = None, generator: Optional[torch.Generator] = None,
           clamp: bool = True):
    """Samples [B, C, H, W] from x_T = prior (our dumped prior, for equal trajectories) or a fresh Kac
    prior draw; clamped to the image range [-1, 1] as ``distillkac sample`` does."""
    if not (isinstance(steps, int) and steps >= 1):
        raise ValueError(f"sample: steps must be a positive integer, got {steps}")
    if not (0 <= t_min < kac.T):
        raise ValueError(f"sample: t-min must be in [0, T) = [0, {kac.T}), got {t_min}")
    cfg = model.config
    shape = (labels.shape[0], cfg["inChannels"], cfg["imageSize"], cfg["imageSize"])
    x = prior.reshape(shape).to(torch.float32) if prior is not None else kac_prior(shape, kac, generator)
    out, nfe = integrate(model, x, kac.T, (kac.T - t_min) / steps, steps, solver, labels, guidance, model.num_classes)
    return (out.clamp(-1, 1) if clamp else out), nfe
