"""``CompiledDecoder``: a model's decode step compiled with ``torch.compile``, and all it owns.

``generate(..., cache_implementation="static", compile_config=...)`` asks for one with
:func:`compiled_decoder`; a program can do the same to drive its own loop. What a decoder holds lives in
the decoder, never on the model: the compiled function, the options it was compiled with, the largest
static cache length used so far (so later runs reuse the graph instead of recompiling per length), and,
on the CPU, the choice of kernels (:class:`~pretrained.inference.routing.DecodeKernels`, entered inside
the compiled function, so only that graph is affected). Decoders are kept per model in a weak table until
:func:`release` (or until the model is freed).

On the CPU, compiling also moves the model's weights into transparent huge pages
(:func:`pretrained.inference.hugepages.move_weights`: parameters keep their objects, names and values;
only their memory moves) because a batch-1 step streams every weight once per token.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import Any

import torch
from torch import nn

from pretrained.inference import hugepages
from pretrained.inference.routing import DecodeKernels

_DECODERS: weakref.WeakKeyDictionary[nn.Module, CompiledDecoder] = weakref.WeakKeyDictionary()


def _decode_forward(model: nn.Module, inputs: dict[str, Any], kernels: bool, reductions: bool) -> Any:
    # The mode is entered inside the traced function, so it shapes this graph only.
    with DecodeKernels(compiled=True, reductions=reductions) if kernels else contextlib.nullcontext():
        return model(**inputs)


def compile_options(compile_config: Any, device: torch.device) -> dict[str, Any]:
    """``torch.compile`` options for a decode step from a ``compile_config`` (dict or config object)."""
    options = compile_config or {}
    if not isinstance(options, dict):
        names = ("fullgraph", "dynamic", "backend", "mode", "options")
        options = {k: getattr(options, k) for k in names if getattr(options, k, None) is not None}
    options = {"fullgraph": False, "dynamic": False, **options}
    if device.type == "cuda" and "mode" not in options and "options" not in options:
        # Replay the step as one CUDA graph: a small model's step is all kernel launches.
        options["mode"] = "reduce-overhead"
    if device.type == "cpu" and "mode" not in options:
        # Inductor's C++ wrapper launches the step's kernels without the Python wrapper's overhead.
        options["options"] = {"cpp_wrapper": True, **(options.get("options") or {})}
    return options


class CompiledDecoder:
    """A compiled forward for decode steps of one model.

    Args:
        model: The causal LM (its weights may move into huge pages on the CPU, see the module docstring).
        compile_config: ``torch.compile`` options (a dict or an object with ``fullgraph``, ``backend``, ...).
    """

    def __init__(self, model: nn.Module, compile_config: Any = None) -> None:
        if getattr(model, "tp_size", None):
            raise NotImplementedError(
                "A compiled decode step of a tensor-parallel model is not supported (its layers meet the other "
                "ranks in collectives the graph would have to capture); generate with the dynamic cache, or "
                "pass disable_compile=True with the static cache."
            )
        device = next(model.parameters()).device
        self.options = compile_options(compile_config, device)
        self.static_len = 0
        self.kernels = device.type == "cpu"
        self.reductions = self.kernels and self.options.get("backend", "inductor") == "inductor"
        if self.kernels:
            DecodeKernels.prepare(compiled=True, reductions=self.reductions)
        self._fn = torch.compile(_decode_forward, **self.options)
        self.prepare(model)

    def prepare(self, model: nn.Module) -> int:
        """Move weights loaded or replaced since the last call into huge pages (CPU); returns bytes moved."""
        return hugepages.move_weights(model) if self.kernels else 0

    def __call__(self, model: nn.Module, cache: Any, skip_guards: bool = False, **inputs: Any) -> Any:
        """Run one step (keyword inputs as for ``model.forward``, with ``cache_position``), then count the
        written slots in ``cache``, as an eager forward does (the graph cannot change a host-side count).

        ``skip_guards``: the caller vouches that the inputs match an earlier step of this run (shapes,
        dtypes, model), so only the guards that tell compiled graphs apart are evaluated.
        """
        stance = torch.compiler.set_stance(skip_guard_eval_unsafe=True) if skip_guards else contextlib.nullcontext()
        with stance:
            out = self._fn(model, inputs, self.kernels, self.reductions)
        cache.advance(inputs["cache_position"].shape[0])
        return out


def compiled_decoder(model: nn.Module, compile_config: Any = None) -> CompiledDecoder:
    """The :class:`CompiledDecoder` of ``model`` for these options: made once, then reused."""
    options = compile_options(compile_config, next(model.parameters()).device)
    decoder = _DECODERS.get(model)
    if decoder is None or decoder.options != options:
        decoder = CompiledDecoder(model, compile_config)
        _DECODERS[model] = decoder
    else:
        decoder.prepare(model)
    return decoder


def release(model: nn.Module) -> None:
    """Forget ``model``'s compiled decoder (its graphs are freed with it; the weights stay where they are)."""
    _DECODERS.pop(model, None)
