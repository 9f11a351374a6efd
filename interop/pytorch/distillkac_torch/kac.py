"""The Kac (telegraph) process in float64, as src/models/kac.ts and bessel.ts compute it: the signal
schedule f, the clock g, the velocity v(s, x) = E[V(s) | K(s) = x] with its light-cone layer, the
conditional training target, exact draws of K(s) (atoms included), the prior, and one training batch.

The Bessel ratio uses the same Cephes Chebyshev series in the same order of operations as bessel.ts,
so the velocity agrees with ours to the last bits. Random draws use torch generators (not our Philox):
the law is the same, the streams are not; feed our prior (``sample --prior``) to compare trajectories.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import torch

F64 = torch.float64

@dataclass(frozen=True)
class KacConfig:
    a: float = 9.0
    c: float = 3.0
    T: float = 1.0
    eps: float = 1e-4
    signal: str = "linear"
    clock: str = "t"

    @staticmethod
    def from_dict(d: Optional[dict]) -> "KacConfig":
        d = dict(d or {})
        unknown = set(d) - {"a", "c", "T", "eps", "signal", "clock"}
        if unknown:
            raise ValueError(f"KacConfig: unknown field(s) {sorted(unknown)}; allowed fields: a, c, T, eps, signal, clock")
        cfg = KacConfig(**d)
        for k in ("a", "c", "T"):
            v = getattr(cfg, k)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"KacConfig.{k} must be a finite number > 0 (got {v})")
        if not (cfg.eps >= 0):
            raise ValueError(f"KacConfig.eps must be >= 0 (got {cfg.eps})")
        if cfg.signal not in ("linear", "exp", "const"):
            raise ValueError(f"KacConfig.signal must be one of 'linear', 'exp', 'const' (got {cfg.signal!r})")
        if cfg.clock not in ("t", "t2"):
            raise ValueError(f"KacConfig.clock must be one of 't', 't2' (got {cfg.clock!r})")
        return cfg

    def to_dict(self) -> dict:
        return {"a": self.a, "c": self.c, "T": self.T, "eps": self.eps, "signal": self.signal, "clock": self.clock}


# ---- schedules (t: float64 tensor) ------------------------------------------------------------

def kac_f(t, cfg: KacConfig):
    if cfg.signal == "linear":
        return 1 - t / cfg.T
    if cfg.signal == "exp":
        return torch.exp(-t)
    return torch.ones_like(t)


def kac_df(t, cfg: KacConfig):
    if cfg.signal == "linear":
        return torch.full_like(t, -1 / cfg.T)
    if cfg.signal == "exp":
        return -torch.exp(-t)
    return torch.zeros_like(t)


def kac_g(t, cfg: KacConfig):
    if cfg.clock == "t":
        return t
    u = t / cfg.T
    return cfg.T * u * u


def kac_dg(t, cfg: KacConfig):
    return torch.ones_like(t) if cfg.clock == "t" else (2 * t) / cfg.T


# ---- Bessel ratio (Cephes chbevl, as bessel.ts) --------------------------------------------------

I0_A = [
    -4.4153416464793393795e-18,
    3.33079451882223809783e-17,
    -2.43127984654795469359e-16,
    1.71539128555513303061e-15,
    -1.16853328779934516808e-14,
    7.67618549860493561688e-14,
    -4.8564467831119294609e-13,
    2.95505266312963983461e-12,
    -1.72682629144155570723e-11,
    9.67580903537323691224e-11,
    -5.18979560163526290666e-10,
    2.65982372468238665035e-9,
    -1.30002500998624804212e-8,
    6.04699502254191894932e-8,
    -2.67079385394061173391e-7,
    1.11738753912010371815e-6,
    -4.41673835845875056359e-6,
    1.64484480707288970893e-5,
    -5.75419501008210370398e-5,
    1.88502885095841655729e-4,
    -5.76375574538582365885e-4,
    1.63947561694133579842e-3,
    -4.3243099950505759443e-3,
    1.05464603945949983183e-2,
    -2.37374148058994688156e-2,
    4.93052842396707084878e-2,
    -9.4901097048047644421e-2,
    1.71620901522208775349e-1,
    -3.04682672343198398683e-1,
    6.76795274409476084995e-1,
]

I0_B = [
    -7.23318048787475395456e-18,
    -4.83050448594418207126e-18,
    4.46562142029675999901e-17,
    3.4612228676974610931e-17,
    -2.82762398051658348494e-16,
    -3.42548561967721913462e-16,
    1.7725601330565263836e-15,
    3.81168066935262242075e-15,
    -9.5548466988283076487e-15,
    -4.15056934728722208663e-14,
    1.54008621752140982691e-14,
    3.85277838274214270114e-13,
    7.18012445138366623367e-13,
    -1.79417853150680611778e-12,
    -1.32158118404477131188e-11,
    -3.14991652796324136454e-11,
    1.18891471078464383424e-11,
    4.9406023882249695891e-10,
    3.39623202570838634515e-9,
    2.26666899049817806459e-8,
    2.04891858946906374183e-7,
    2.89137052083475648297e-6,
    6.88975834691682398426e-5,
    3.3691164782556940899e-3,
    8.04490411014108831608e-1,
]

I1_A = [
    2.77791411276104639959e-18,
    -2.11142121435816608115e-17,
    1.55363195773620046921e-16,
    -1.10559694773538630805e-15,
    7.6006842947354069341e-15,
    -5.04218550472791168711e-14,
    3.22379336594557470981e-13,
    -1.9839743977649437152e-12,
    1.17361862988909016308e-11,
    -6.66348972350202774223e-11,
    3.62559028155211703701e-10,
    -1.8872497517228292879e-9,
    9.38153738649577178388e-9,
    -4.44505912879632808065e-8,
    2.00329475355213526229e-7,
    -8.56872026469545474066e-7,
    3.47025130813767847674e-6,
    -1.32731636560394358279e-5,
    4.78156510755005422638e-5,
    -1.61760815825896745588e-4,
    5.12285956168575772895e-4,
    -1.51357245063125314899e-3,
    4.15642294431288815669e-3,
    -1.05640848946261981558e-2,
    2.47264490306265168283e-2,
    -5.29459812080949914269e-2,
    1.02643658689847095384e-1,
    -1.76416518357834055153e-1,
    2.52587186443633654823e-1,
]

I1_B = [
    7.51729631084210481353e-18,
    4.41434832307170791151e-18,
    -4.65030536848935832153e-17,
    -3.2095259219934239598e-17,
    2.96262899764595013876e-16,
    3.30820231092092828324e-16,
    -1.88035477551078244854e-15,
    -3.81440307243700780478e-15,
    1.04202769841288027642e-14,
    4.27244001671195135429e-14,
    -2.10154184277266431302e-14,
    -4.08355111109219731823e-13,
    -7.19855177624590851209e-13,
    2.03562854414708950722e-12,
    1.41258074366137813316e-11,
    3.25260358301548823856e-11,
    -1.8974958123505412345e-11,
    -5.58974346219658380687e-10,
    -3.83538038596423702205e-9,
    -2.63146884688951950684e-8,
    -2.51223623787020892529e-7,
    -3.88256480887769039346e-6,
    -1.10588938762623716291e-4,
    -9.76109749136146840777e-3,
    7.78576235018280120474e-1,
]


def _chbevl(y: torch.Tensor, coef) -> torch.Tensor:
    b0 = torch.full_like(y, coef[0])
    b1 = torch.zeros_like(y)
    b2 = torch.zeros_like(y)
    for c in coef[1:]:
        b2 = b1
        b1 = b0
        b0 = y * b1 - b2 + c
    return 0.5 * (b0 - b2)


def i0e(x: torch.Tensor) -> torch.Tensor:
    ax = x.abs()
    small = _chbevl(ax / 2 - 2, I0_A)
    big = _chbevl(32 / ax.clamp(min=8) - 2, I0_B) / torch.sqrt(ax.clamp(min=8))
    return torch.where(ax <= 8, small, big)


def i1e_over_x(x: torch.Tensor) -> torch.Tensor:
    ax = x.abs()
    small = _chbevl(ax / 2 - 2, I1_A)
    axb = ax.clamp(min=8)
    big = _chbevl(32 / axb - 2, I1_B) / (torch.sqrt(axb) * axb)
    return torch.where(ax <= 8, small, big)


def i1e(x: torch.Tensor) -> torch.Tensor:
    ax = x.abs()
    axb = ax.clamp(min=8)
    r = torch.where(ax <= 8, _chbevl(ax / 2 - 2, I1_A) * ax, _chbevl(32 / axb - 2, I1_B) / torch.sqrt(axb))
    return torch.where(x < 0, -r, r)


def z_i0_over_i1(z: torch.Tensor) -> torch.Tensor:
    """z I0(z) / I1(z), >= 2, limit 2 at z = 0 (finite on the light cone)."""
    az = z.abs()
    azb = az.clamp(min=8)
    return torch.where(az <= 8, i0e(az) / i1e_over_x(az), azb * (i0e(azb) / i1e(azb)))


# ---- velocity and target ------------------------------------------------------------------------

def kac_velocity(s: torch.Tensor, x: torch.Tensor, cfg: KacConfig) -> torch.Tensor:
    """v(s, x) in float64; |x| >= c s - eps (s/T) c is the atom: sign(x) c."""
    s, x = torch.broadcast_tensors(s.to(F64), x.to(F64))
    a, c = cfg.a, cfg.c
    layer = c * s - cfg.eps * (s / cfg.T) * c
    ax = x.abs()
    cs = c * s
    r = torch.sqrt(((cs - ax) * (cs + ax)).clamp(min=0))
    inner = x / (s + z_i0_over_i1((a * r) / c) / a)
    return torch.where(ax >= layer, torch.sign(x) * c, inner)


def kac_target(t: torch.Tensor, x: torch.Tensor, x0: torch.Tensor, cfg: KacConfig) -> torch.Tensor:
    """u_t(x | x0) = f'(t) x0 + g'(t) v(g(t), x - f(t) x0), float64."""
    t, x, x0 = (v.to(F64) for v in torch.broadcast_tensors(t, x, x0))
    return kac_df(t, cfg) * x0 + kac_dg(t, cfg) * kac_velocity(kac_g(t, cfg), x - kac_f(t, cfg) * x0, cfg)


# ---- exact draws ----------------------------------------------------------------------------------

def _gamma_int(m: torch.Tensor, gen: Optional[torch.Generator]) -> torch.Tensor:
    """Gamma(m, 1) for integer m >= 1, as a sum of m standard exponentials (exact)."""
    mmax = int(m.max().item()) if m.numel() else 0
    if mmax == 0:
        return torch.zeros(m.shape, dtype=F64)
    e = torch.empty(m.shape + (mmax,), dtype=F64).exponential_(1.0, generator=gen)
    mask = torch.arange(mmax).expand_as(e) < m.unsqueeze(-1)
    return (e * mask).sum(-1)


def kac_sample(s: torch.Tensor, cfg: KacConfig, gen: Optional[torch.Generator] = None) -> torch.Tensor:
    """Exact draws of K(s), one per element of s (float64): N ~ Poisson(a s) flips; N = 0 gives the
    atom +-cs, else K = +-cs (2B - 1) with B ~ Beta(ceil((N+1)/2), floor((N+1)/2))."""
    s = s.to(F64)
    sign = torch.where(torch.rand(s.shape, dtype=F64, generator=gen) < 0.5, -1.0, 1.0).to(F64)
    n = torch.poisson(cfg.a * s, generator=gen).to(torch.int64)
    m1 = (n + 2) // 2
    m2 = (n + 1) // 2
    g1 = _gamma_int(torch.where(n > 0, m1, torch.zeros_like(m1)), gen)
    g2 = _gamma_int(torch.where(n > 0, m2, torch.zeros_like(m2)), gen)
    b = torch.where(n > 0, g1 / (g1 + g2).clamp(min=1e-300), torch.ones_like(g1))
    k = sign * cfg.c * s * (2 * b - 1)
    return torch.where(s == 0, torch.zeros_like(k), k)


def kac_prior(shape, cfg: KacConfig, gen: Optional[torch.Generator] = None) -> torch.Tensor:
    """x_T: i.i.d. draws of K(g(T)) per coordinate, float32 (exact for the linear signal)."""
    if cfg.signal == "const":
        raise ValueError("kac_prior: a 'const' signal has a data-dependent prior x0 + K(g(T))")
    s = torch.full(tuple(shape), float(kac_g(torch.tensor(cfg.T, dtype=F64), cfg)), dtype=F64)
    return kac_sample(s, cfg, gen).to(torch.float32)


def kac_training_batch(x0: torch.Tensor, t: torch.Tensor, cfg: KacConfig, gen: Optional[torch.Generator] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """One flow-matching batch, computed in float64 and stored as float32, as kacTrainingBatch:
    K ~ K(g(t)), xt = f(t) x0 + K, target = f'(t) x0 + g'(t) v(g(t), K). x0 [B, ...], t [B]."""
    t = t.to(F64)
    if ((t < 0) | (t > cfg.T)).any():
        raise ValueError(f"kac_training_batch: times outside [0, T = {cfg.T}]")
    view = (-1,) + (1,) * (x0.dim() - 1)
    x0d = x0.to(F64)
    f, df, s, dg = (fn(t, cfg).view(view) for fn in (kac_f, kac_df, kac_g, kac_dg))
    k = kac_sample(s.expand_as(x0d).contiguous(), cfg, gen)
    xt = f * x0d + k
    target = df * x0d + dg * kac_velocity(s, k, cfg)
    return xt.to(torch.float32), target.to(torch.float32)
