"""Speed transforms for inference, applied to a plain model on purpose and owning their state.

* :class:`~pretrained.inference.routing.DecodeKernels`: a per-thread torch function mode that sends the
  few-row linears of a decode step to faster CPU kernels
  (:mod:`pretrained.inference.kernels`); anything else (quantized or sharded layers, other dtypes,
  autograd) runs as without it.
* :class:`~pretrained.inference.compiled.CompiledDecoder`: the ``torch.compile``-d decode step that
  ``generate`` drives with a static cache and a ``compile_config``; on the CPU it packs sibling
  projections (q/k/v, gate/up) side by side so that each group is one product in the compiled step.
* :mod:`pretrained.inference.hugepages`: CPU weights in transparent huge pages for compiled decoding
  (packed, collapsed, and how much really is in huge pages).

Models never import this package: they describe the math with plain ``nn.Linear`` layers and the
attention registry, and the transforms act on the calls.
"""
