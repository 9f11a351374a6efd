#!/usr/bin/env python3
"""`torchrun` for Debian bookworm's python3-torch 1.13 on Python 3.11, where the stock launcher fails
before starting any worker (AttributeError: 'NoneType' object has no attribute 'get' in to_map: on
3.11, iterating the Std flag enum skips NONE, so the default --redirects 0 / --tee 0 parse to None).
Same arguments as torchrun; with a newer torch, plain `torchrun` works and this is not needed:

  /usr/bin/python3 torchrun_compat.py --nproc_per_node 2 train_ddp.py --preset tiny ...
"""
import sys

from torch.distributed.elastic.multiprocessing import api

_from_str = api.Std.from_str


def _fixed(vm):
    r = _from_str(vm)
    if isinstance(r, dict):
        return {k: api.Std.NONE if v is None else v for k, v in r.items()}
    return api.Std.NONE if r is None else r


api.Std.from_str = staticmethod(_fixed)

if __name__ == "__main__":
    from torch.distributed.run import main

    sys.exit(main())
