"""Distributed execution on ``torch.distributed``: the device mesh, tensor parallelism, and (in their own
modules) data and context parallelism and distributed checkpoints.

``mesh`` reads torchrun's environment, starts the process group and builds a ``DeviceMesh`` with named
dimensions (``dp``, ``cp``, ``tp``); ``tensor_parallel`` shards a plain model by a plan while it loads.
A model file never imports this package: plans are data on the config and model classes
(``base_model_tp_plan``, ``_tp_plan``), applied from outside.
"""

from pretrained.distributed.mesh import DistributedConfig

__all__ = ["DistributedConfig"]
