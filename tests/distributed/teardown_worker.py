"""Run under torchrun by test_teardown.py: a program that starts and destroys its own process group, with
the references torch keeps to it afterwards, then `close_distributed`.

`teardown_worker.py OUT_DIR` writes OUT_DIR/threads-RANK.json: the gloo threads alive after torch's
`destroy_process_group` and after `close_distributed`; it exits with status 3 when some survive the latter.
"""

import gc
import json
import os
import sys

import torch
import torch.distributed as dist
from backend_threads import backend_threads, check_backend_threads_gone
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import Shard, distribute_tensor

from pretrained.distributed.mesh import close_distributed


def use_group() -> None:
    # torch._dynamo imports torch.distributed.nn.functional, whose default arguments take the running
    # group; a DTensor's sharding caches keep its mesh, and the mesh the groups it looked up.
    import torch._dynamo  # noqa: F401

    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    full = distribute_tensor(torch.arange(8.0).reshape(4, 2), mesh, [Shard(0)]).full_tensor()
    assert torch.equal(full, torch.arange(8.0).reshape(4, 2))


if __name__ == "__main__":
    torch.set_num_threads(1)
    dist.init_process_group("gloo")  # the program's own group, not init_distributed's
    use_group()
    dist.barrier()
    dist.destroy_process_group()
    gc.collect()
    seen = {"after_destroy": backend_threads()}
    close_distributed()
    seen["after_close"] = backend_threads()
    with open(os.path.join(sys.argv[1], f"threads-{os.environ['RANK']}.json"), "w") as f:
        json.dump(seen, f)
    check_backend_threads_gone()
