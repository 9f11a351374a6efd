"""Command line of the twin (used by test/pytorch-interop.test.ts, handy by hand):

  python -m distillkac_torch forward --checkpoint F --inputs IN.safetensors --out OUT.safetensors
      IN holds x [B,C,H,W] F32, t [B] F32, labels [B] I32; OUT holds out [B,C,H,W] F32
  python -m distillkac_torch sample --checkpoint F --prior P.safetensors --steps N --solver S
         [--guidance W] [--t-min T] --out OUT.safetensors
      P holds prior [B,C,H,W] F32 (e.g. our Philox prior) and labels [B] I32; OUT holds samples
  python -m distillkac_torch kac --inputs IN.json --out OUT.json
      float64 velocity/target/prior-moments of the points in IN (for checks against kac.ts)
  python -m distillkac_torch info --checkpoint F
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

from . import CheckpointError, load_model
from .checkpoint import decode_safetensors, encode_safetensors, write_file_atomic
from .kac import KacConfig, kac_prior, kac_target, kac_velocity
from .solvers import SOLVERS, sample


def _read(path):
    with open(path, "rb") as f:
        return decode_safetensors(f.read(), path)[0]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m distillkac_torch")
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("forward")
    f.add_argument("--checkpoint", required=True)
    f.add_argument("--inputs", required=True)
    f.add_argument("--out", required=True)
    s = sub.add_parser("sample")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--prior", required=True)
    s.add_argument("--steps", type=int, required=True)
    s.add_argument("--solver", choices=SOLVERS, required=True)
    s.add_argument("--guidance", type=float, default=1.0)
    s.add_argument("--t-min", type=float, default=1e-5)
    s.add_argument("--out", required=True)
    k = sub.add_parser("kac")
    k.add_argument("--inputs", required=True)
    k.add_argument("--out", required=True)
    i = sub.add_parser("info")
    i.add_argument("--checkpoint", required=True)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    try:
        if a.cmd == "forward":
            model, _ = load_model(a.checkpoint)
            t = _read(a.inputs)
            with torch.no_grad():
                out = model(torch.from_numpy(t["x"]), torch.from_numpy(t["t"]), torch.from_numpy(t["labels"]).long())
            write_file_atomic(a.out, encode_safetensors({"out": out.numpy()}))
        elif a.cmd == "sample":
            model, ckpt = load_model(a.checkpoint)
            t = _read(a.prior)
            kac = KacConfig.from_dict(ckpt.config["kac"])
            out, nfe = sample(model, torch.from_numpy(t["labels"]).long(), a.steps, a.solver, kac, a.t_min, a.guidance, prior=torch.from_numpy(t["prior"]))
            write_file_atomic(a.out, encode_safetensors({"samples": out.numpy()}, {"nfe": str(nfe)}))
        elif a.cmd == "kac":
            with open(a.inputs) as fh:
                d = json.load(fh)
            cfg = KacConfig.from_dict(d.get("kac"))
            T = lambda key: torch.tensor(d[key], dtype=torch.float64)
            res = {
                "velocity": kac_velocity(T("s"), T("x"), cfg).tolist(),
                "target": kac_target(T("t"), T("xt"), T("x0"), cfg).tolist(),
            }
            if "priorCount" in d:
                g = torch.Generator().manual_seed(int(d.get("seed", 0)))
                pr = kac_prior((int(d["priorCount"]),), cfg, g).double()
                cs = cfg.c * cfg.T
                res["prior"] = {"mean": pr.mean().item(), "var": pr.var().item(), "atomFraction": (pr.abs() >= np.float32(cs)).double().mean().item(), "maxAbs": pr.abs().max().item()}
            with open(a.out, "w") as fh:
                json.dump(res, fh)
        else:
            model, ckpt = load_model(a.checkpoint)
            print(json.dumps({"kind": ckpt.kind, "step": ckpt.step, "parameters": sum(p.numel() for p in model.parameters()), "config": ckpt.config}))
    except (CheckpointError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
