"""``ManyRowsKernels``: a torch function mode that sends the many-row linear calls of an inference forward
(an image encoder's 197 tokens per image, a speech encoder's 1,500 frames per clip) to oneDNN's matmul.

oneDNN's fp32 matmul on the plain weight beats the MKL ``sgemm`` behind ``F.linear`` for these shapes
(a few hundred to thousands of rows against weights of 384-3,072 columns; numbers in the README's pipeline
section). Packing the weight first gained little more, so weights stay as they are and nothing is cached. The
results differ from ``F.linear``'s by float32 rounding (the sums are accumulated in another order).

As :class:`~pretrained.inference.routing.DecodeKernels` does for few-row steps, the mode looks at the
calls one by one and reroutes only plain fp32 CPU tensors outside autograd with at least ``MIN_ROWS``
rows; anything else (quantized layers, bf16, a ``DTensor``, training) runs as without it. Modes are per
thread and last only for the ``with`` block. Under ``DecodeKernels`` the inner mode sees a call first.

The image pipelines enter the mode around their whole forward; the speech pipeline around the encoder
alone (:meth:`ManyRowsKernels.around_modules`), since in the decode steps it would only add a Python look
at each torch call; the encoder text pipelines (feature extraction, text / token / zero-shot
classification, fill-mask, question answering) around the model's call on a batch of 128 tokens or more
(``Pipeline._many_rows``: for one short text that look costs more than it saves).

Unmasked self-attention of ``encoder_attention.MIN_LENGTH`` (128) or more positions goes to
:func:`~pretrained.inference.encoder_attention.encoder_attention` (one C++ call, faster than PyTorch's flash
kernel for these shapes); anything else it does not serve keeps SDPA.

Given the model, the mode also fuses the exact GELU that follows the first linear of a feed-forward block
(ViT's and BERT's ``intermediate``, the shared encoder-decoder layers' ``fc1``) into oneDNN's matmul as a
post-op: one pass over the ``(rows, 4 * hidden)`` activation fewer. The rerouted linear returns the
activated values, and the block's own GELU call on exactly that tensor then returns it as it is. Only
blocks whose code applies the activation straight to the linear's output are fused (found by type and
attribute when the mode is made), and never a layer with hooks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from pretrained.inference import encoder_attention, kernels
from pretrained.inference.routing import plain_fp32_cpu

# Fewer rows than this stay with F.linear (the decode kernels' territory, and too little work to matter).
MIN_ROWS = 32
# Smaller weights than this stay with F.linear: oneDNN's call overhead is not paid back.
MIN_WEIGHT = 64 * 64


class ManyRowsKernels(TorchFunctionMode):
    """Reroute fp32 CPU linears of ``MIN_ROWS`` rows or more to oneDNN's matmul, with the following GELU
    fused where ``model`` shows it is one (see the module docstring)."""

    def __init__(self, model: Any = None) -> None:
        super().__init__()
        self._gelu_weights = gelu_weights(model) if model is not None else frozenset()
        self._activated: Any = None  # the last fused output, whose GELU call is to pass it through

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func is F.linear and not torch.is_grad_enabled():
            out = self._linear(*args, **kwargs)
            if out is not None:
                return out
        elif func is F.scaled_dot_product_attention and encoder_attention.ENABLED:
            out = encoder_attention.encoder_attention(*args, **kwargs)
            if out is not None:
                return out
        elif func is F.gelu and self._activated is not None and args and args[0] is self._activated:
            self._activated = None
            if kwargs.get("approximate", "none") == "none" and len(args) == 1:
                return args[0]
            raise RuntimeError("ManyRowsKernels fused an exact GELU into a linear whose output then went to "
                               f"another GELU ({args[1:]}, {kwargs}); the block does not fit the fusion")
        return func(*args, **kwargs)

    @classmethod
    def around(cls, context: Callable[[], Any], model: Any = None) -> Callable[[], Any]:
        """A context factory that enters ``context()`` and then this mode (a pipeline's inference context);
        ``model`` lets it fuse the feed-forward blocks' GELU (looked up at each entry, so later hooks count)."""

        def enter() -> contextlib.ExitStack:
            stack = contextlib.ExitStack()
            stack.enter_context(context())
            stack.enter_context(cls(model))
            return stack

        return enter

    @classmethod
    def around_modules(cls, context: Callable[[], Any], modules: list[Any], model: Any = None) -> Callable[[], Any]:
        """A context factory that enters ``context()`` and, until it exits, runs each of ``modules`` (an
        encoder, say) inside this mode, and nothing else: where the rest of the work is many small steps (a
        decoder's), the mode would look at each of their torch calls in Python for nothing.

        The modules' ``forward`` is swapped on the instance for the length of the block (as
        ``generation.runner.RoutedLinears`` does), so another thread calling them meanwhile gets the same
        kernels; a module whose ``forward`` is already swapped is left alone."""

        def enter() -> contextlib.ExitStack:
            stack = contextlib.ExitStack()
            stack.enter_context(context())
            for module in modules:
                if "forward" in vars(module):
                    continue
                module.forward = cls._inside(module.forward, model)
                stack.callback(vars(module).pop, "forward", None)
            return stack

        return enter

    @classmethod
    def _inside(cls, forward: Callable[..., Any], model: Any) -> Callable[..., Any]:
        def routed(*args: Any, **kwargs: Any) -> Any:
            with cls(model):
                return forward(*args, **kwargs)

        return routed

    def _linear(self, x: Any, weight: Any, bias: Any = None) -> Any:
        if not plain_fp32_cpu(x, weight, bias):
            return None
        if x.dim() == 0 or x.numel() // max(x.shape[-1], 1) < MIN_ROWS or weight.numel() < MIN_WEIGHT:
            return None
        if weight.dim() != 2 or not kernels.onednn_available():
            return None
        if weight in self._gelu_weights:
            self._activated = torch.ops.mkldnn._linear_pointwise(x, weight, bias, "gelu", [], "none")
            return self._activated
        return kernels.onednn_linear(x, weight, bias)


def gelu_weights(model: Any) -> frozenset:
    """The weights of ``model``'s linears whose output its code passes straight to exact GELU: an
    :class:`~pretrained.modeling.encoder.EncoderIntermediate` (``act(dense(x))``) or a shared encoder /
    decoder layer's feed-forward block (``act(fc1(x))``), with ``F.gelu`` as the activation, the shared code
    as the forward, and no hooks that would see the linear's output."""
    from torch.nn.modules import module as module_globals

    from pretrained.modeling.encoder import EncoderIntermediate
    from pretrained.modeling.seq2seq import _Sublayers

    if module_globals._global_forward_hooks or module_globals._global_forward_pre_hooks:
        return frozenset()
    found = []
    for module in model.modules():
        if isinstance(module, EncoderIntermediate) and type(module).forward is EncoderIntermediate.forward:
            linear, act = getattr(module, "dense", None), module.__dict__.get("intermediate_act_fn")
        elif isinstance(module, _Sublayers) and type(module)._feed_forward is _Sublayers._feed_forward:
            linear, act = getattr(module, "fc1", None), module.__dict__.get("activation_fn")
        else:
            continue
        if (act is F.gelu and type(linear) is torch.nn.Linear and "forward" not in vars(linear)
                and not (linear._forward_hooks or linear._forward_pre_hooks)):
            found.append(linear.weight)
    return _WeightSet(found)


class _WeightSet(frozenset):
    """Tensors compared by identity (a tensor's ``==`` is elementwise, so a plain set cannot hold them)."""

    def __new__(cls, tensors: list[Any]) -> _WeightSet:
        out = super().__new__(cls, (id(t) for t in tensors))
        out._keep = tuple(tensors)  # alive while the set is, so no id is reused
        return out

    def __contains__(self, tensor: object) -> bool:
        return frozenset.__contains__(self, id(tensor))
