"""`DataCollatorMixin`: the base transformers' collators share, for collators written against it.

A subclass sets `return_tensors` ("pt" or "np") and defines `torch_call(features)` and/or
`numpy_call(features)`; calling the collator picks one by `return_tensors` (the call's argument first).
"""

from __future__ import annotations

from typing import Any

_METHODS = {"pt": "torch_call", "np": "numpy_call"}


class DataCollatorMixin:
    """Dispatch `collator(features, return_tensors=None)` to `torch_call` / `numpy_call`."""

    return_tensors: str = "pt"

    def __call__(self, features: list[Any], return_tensors: str | None = None) -> Any:
        kind = self.return_tensors if return_tensors is None else return_tensors
        method = _METHODS.get(kind)
        if method is None:
            raise ValueError(
                f"{type(self).__name__}: return_tensors={kind!r} is not supported; use one of {sorted(_METHODS)}"
            )
        call = getattr(self, method, None)
        if call is None:
            raise NotImplementedError(f"{type(self).__name__} defines no {method}() for return_tensors={kind!r}")
        return call(features)
