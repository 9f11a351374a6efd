"""Our checkpoint format (distillkac/1): one safetensors file whose ``__metadata__`` holds
``format``, ``kind``, ``step``, ``config`` (JSON) and ``state`` (JSON).

Written byte for byte as src/engine/safetensors.ts writes it: tensors sorted by dtype alignment then
name, metadata keys sorted, the header padded with spaces to a multiple of 8, and JSON numbers
formatted as JavaScript's JSON.stringify formats them (so ``config`` compares equal on either side).
No dependency beyond numpy and torch.
"""
from __future__ import annotations

import json
import math
import os
import struct
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

CHECKPOINT_FORMAT = "distillkac/1"

_DTYPES = {"F32": (np.float32, 4), "I32": (np.int32, 4), "U8": (np.uint8, 1), "F16": (np.float16, 2), "I64": (np.int64, 8)}
_RANK = {"U8": 1, "F16": 7, "BF16": 8, "I32": 9, "F32": 11, "I64": 13}


class CheckpointError(Exception):
    """A file that is not a usable distillkac checkpoint (the message names the file and the problem)."""


# ---- JSON as JavaScript writes it -------------------------------------------------------------

def _js_number(x: Any) -> str:
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, int):
        return str(x)
    if not math.isfinite(x):
        return "null"
    if x == 0:
        return "0"
    r = repr(float(x))  # shortest round-trip digits, as JavaScript's Number#toString uses
    sign = "-" if r.startswith("-") else ""
    r = r.lstrip("-")
    mant, _, exp = r.partition("e")
    e = int(exp) if exp else 0
    ip, _, fp = mant.partition(".")
    digits = (ip + fp).lstrip("0")
    # position of the decimal point relative to the first significant digit
    point = len(ip) + e if ip != "0" else e - (len(fp) - len(fp.lstrip("0")))
    if ip == "0":
        digits = fp.lstrip("0")
    digits = digits.rstrip("0") or "0"
    k, n = len(digits), point  # value = 0.digits * 10^n
    if k <= n <= 21:
        s = digits + "0" * (n - k)
    elif 0 < n <= 21:
        s = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        s = "0." + "0" * (-n) + digits
    else:
        e2 = n - 1
        s = digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + ("+" if e2 > 0 else "-") + str(abs(e2))
    return sign + s


def js_json(v: Any) -> str:
    """JSON.stringify(v) (no spaces; dict order kept; None -> null)."""
    if v is None:
        return "null"
    if isinstance(v, (bool, int, float)):
        return _js_number(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(js_json(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(f"{json.dumps(str(k), ensure_ascii=False)}:{js_json(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} as JSON")


def _strip_none(v: Any) -> Any:
    """JSON.stringify drops undefined fields; Python callers use None for them inside dicts."""
    if isinstance(v, dict):
        return {k: _strip_none(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_strip_none(x) for x in v]
    return v


# ---- safetensors ------------------------------------------------------------------------------

def encode_safetensors(tensors: Dict[str, np.ndarray], metadata: Optional[Dict[str, str]] = None) -> bytes:
    items = []
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        if a.dtype == np.float32:
            dt = "F32"
        elif a.dtype == np.int32:
            dt = "I32"
        elif a.dtype == np.uint8:
            dt = "U8"
        else:
            raise CheckpointError(f"tensor {name}: dtype {a.dtype} is not written (use float32, int32 or uint8)")
        items.append((name, dt, a))
    items.sort(key=lambda it: (-_RANK[it[1]], it[0].encode("utf-8")))
    parts = []
    if metadata is not None:
        md = ",".join(f"{json.dumps(k, ensure_ascii=False)}:{json.dumps(metadata[k], ensure_ascii=False)}" for k in sorted(metadata, key=lambda s: s.encode("utf-8")))
        parts.append(f'"__metadata__":{{{md}}}')
    off = 0
    for name, dt, a in items:
        nb = a.size * a.itemsize
        parts.append(f'{json.dumps(name, ensure_ascii=False)}:{{"dtype":"{dt}","shape":[{",".join(str(d) for d in a.shape)}],"data_offsets":[{off},{off + nb}]}}')
        off += nb
    header = ("{" + ",".join(parts) + "}").encode("utf-8")
    pad = (-len(header)) % 8
    header += b" " * pad
    out = [struct.pack("<Q", len(header)), header]
    for _, _, a in items:
        out.append(a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes())
    return b"".join(out)


def decode_safetensors(data: bytes, name: str = "file") -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    if len(data) < 8:
        raise CheckpointError(f"{name}: {len(data)} bytes, too short for a safetensors file")
    (hlen,) = struct.unpack("<Q", data[:8])
    if hlen > len(data) - 8:
        raise CheckpointError(f"{name}: header length {hlen} runs past the end of the file ({len(data)} bytes); the file is truncated or not safetensors")
    try:
        header = json.loads(data[8 : 8 + hlen].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{name}: the safetensors header is not valid JSON ({e})") from None
    metadata = header.pop("__metadata__", None) or {}
    base = 8 + hlen
    tensors: Dict[str, np.ndarray] = {}
    for k, info in header.items():
        dt = info.get("dtype")
        if dt not in _DTYPES:
            raise CheckpointError(f"{name}: tensor {k} has dtype {dt}, which this reader does not handle")
        npdt, size = _DTYPES[dt]
        shape = [int(d) for d in info["shape"]]
        a, b = info["data_offsets"]
        count = int(np.prod(shape)) if shape else 1
        if b - a != count * size or base + b > len(data):
            raise CheckpointError(f"{name}: tensor {k} has data offsets [{a}, {b}] that do not fit its shape {shape} or the file")
        tensors[k] = np.frombuffer(data, dtype=np.dtype(npdt).newbyteorder("<"), count=count, offset=base + a).reshape(shape).astype(npdt)
    return tensors, metadata


# ---- checkpoints ------------------------------------------------------------------------------

def write_file_atomic(path: str, data: bytes) -> None:
    """Temporary file, fsync, rename, fsync of the folder: a crash leaves the old file or the new one."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def encode_checkpoint(kind: str, step: int, config: Any, state: Any, tensors: Dict[str, Any]) -> bytes:
    arrays = {}
    for k, v in tensors.items():
        if isinstance(v, torch.Tensor):
            v = v.detach().to("cpu", torch.float32).contiguous().numpy()
        arrays[k] = np.asarray(v, dtype=np.float32)
    metadata = {
        "format": CHECKPOINT_FORMAT,
        "kind": kind,
        "step": str(int(step)),
        "config": js_json(_strip_none(config)),
        "state": js_json(_strip_none(state)),
    }
    return encode_safetensors(arrays, metadata)


def save_checkpoint(path: str, kind: str, step: int, config: Any, state: Any, tensors: Dict[str, Any]) -> str:
    """Write a checkpoint atomically. ``tensors``: name -> torch tensor or numpy array (stored as F32)."""
    write_file_atomic(path, encode_checkpoint(kind, step, config, state, tensors))
    return path


class Checkpoint(dict):
    """kind, step, config, state (decoded JSON) and tensors (name -> float32 torch tensor)."""

    def __getattr__(self, k):
        try:
            return self[k]
        except KeyError:
            raise AttributeError(k) from None


def load_checkpoint(path: str) -> Checkpoint:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e.strerror}") from None
    arrays, md = decode_safetensors(data, path)
    if md.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f'{path}: not a distillkac checkpoint (metadata format is {json.dumps(md.get("format"))}, expected "{CHECKPOINT_FORMAT}")')
    try:
        step = int(md.get("step", ""))
    except ValueError:
        raise CheckpointError(f"{path}: invalid step {md.get('step')!r}") from None
    parsed = {}
    for key in ("config", "state"):
        try:
            parsed[key] = json.loads(md.get(key, "null"))
        except json.JSONDecodeError:
            raise CheckpointError(f'{path}: metadata field "{key}" is not valid JSON; the file is corrupt') from None
    tensors = {}
    for k, a in arrays.items():
        if a.dtype != np.float32:
            raise CheckpointError(f"{path}: tensor {k} has dtype {a.dtype}, expected a float type")
        if not np.isfinite(a).all():
            raise CheckpointError(f"{path}: tensor {k} holds non-finite values; the run diverged or the file is corrupt")
        tensors[k] = torch.from_numpy(a.copy())
    return Checkpoint(kind=md.get("kind", "unknown"), step=step, config=parsed["config"], state=parsed["state"], tensors=tensors, path=path)


def model_weights(ckpt: Checkpoint) -> Dict[str, torch.Tensor]:
    """The sampling weights: the EMA weights of a full training checkpoint, else the file's tensors."""
    t = ckpt.tensors
    if any(k.startswith("ema.") for k in t):
        return {k[4:]: v for k, v in t.items() if k.startswith("ema.")}
    return dict(t)


def load_weights_into(model: torch.nn.Module, weights: Dict[str, torch.Tensor], name: str) -> None:
    """``model.load_state_dict(weights, strict=True)``, with an error that names what does not fit."""
    own = model.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    if missing or unexpected:
        def few(xs):
            return ", ".join(xs[:5]) + (f" (+{len(xs) - 5} more)" if len(xs) > 5 else "")
        raise CheckpointError(
            f"{name}: tensors do not match the model"
            + (f"; missing: {few(missing)}" if missing else "")
            + (f"; unexpected: {few(unexpected)}" if unexpected else "")
            + " (was the checkpoint made with another model configuration or preset?)"
        )
    for k, v in own.items():
        if tuple(weights[k].shape) != tuple(v.shape):
            raise CheckpointError(f"{name}: {k} has shape {list(weights[k].shape)} in the checkpoint but {list(v.shape)} in the model (another preset or model configuration?)")
    model.load_state_dict(weights, strict=True)
