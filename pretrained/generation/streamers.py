"""Streamers receive tokens from ``generate`` as they are produced (``put``) and a final ``end()``."""

from __future__ import annotations

import unicodedata
from queue import Queue
from typing import Any


class BaseStreamer:
    """Interface: ``put(token_ids)`` for each new chunk (the prompt first), then ``end()``."""

    def put(self, value: Any) -> None:
        raise NotImplementedError

    def end(self) -> None:
        raise NotImplementedError


def _is_cjk(char: str) -> bool:
    cp = ord(char)
    ranges = (
        (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
        (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
    )  # fmt: skip
    return any(lo <= cp <= hi for lo, hi in ranges)


class TextStreamer(BaseStreamer):
    """Print text to stdout as soon as whole words are decoded (batch size 1).

    Text is held back until a word is complete, because a later token can change how earlier bytes decode.

    Args:
        tokenizer: Used to decode the tokens.
        skip_prompt: Do not print the prompt.
        **decode_kwargs: Passed to ``tokenizer.decode`` (e.g. ``skip_special_tokens=True``).
    """

    def __init__(self, tokenizer: Any, skip_prompt: bool = False, **decode_kwargs: Any) -> None:
        self.tokenizer = tokenizer
        self.skip_prompt = skip_prompt
        self.decode_kwargs = decode_kwargs
        self.token_cache: list[int] = []
        self.print_len = 0
        self.next_tokens_are_prompt = True

    def put(self, value: Any) -> None:
        """Receive a chunk of token ids, ``(n,)`` or ``(1, n)``."""
        if value.dim() > 1:
            if value.shape[0] > 1:
                raise ValueError("TextStreamer only supports batch size 1")
            value = value[0]
        if self.skip_prompt and self.next_tokens_are_prompt:
            self.next_tokens_are_prompt = False
            return
        self.token_cache.extend(value.tolist())
        text = self.tokenizer.decode(self.token_cache, **self.decode_kwargs)
        pending = text[self.print_len :]
        if text.endswith("\n"):
            # A newline closes the line: restart the cache from the last token to keep memory flat.
            printable = pending
            self.token_cache = self.token_cache[-1:]
            self.print_len = len(self.tokenizer.decode(self.token_cache, **self.decode_kwargs))
        elif (text and _is_cjk(text[-1])) or all(
            c.isspace() or unicodedata.category(c)[0] in "LMN" for c in pending
        ):
            printable = pending
            self.print_len += len(printable)
        else:
            printable = text[self.print_len : text.rfind(" ") + 1]
            self.print_len += len(printable)
        self.on_finalized_text(printable)

    def end(self) -> None:
        """Flush what is left and end the stream."""
        printable = ""
        if self.token_cache:
            printable = self.tokenizer.decode(self.token_cache, **self.decode_kwargs)[self.print_len :]
        self.token_cache, self.print_len = [], 0
        self.next_tokens_are_prompt = True
        self.on_finalized_text(printable, stream_end=True)

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        """Print ``text``; a newline ends the stream."""
        print(text, flush=True, end=None if stream_end else "")


class TextIteratorStreamer(TextStreamer):
    """Queue the text for another thread to iterate over (run ``generate`` in a thread, iterate here).

    Args:
        tokenizer: Used to decode the tokens.
        skip_prompt: Do not yield the prompt.
        timeout: Seconds to wait for the next piece before ``queue.Empty`` is raised (``None``: forever).
        **decode_kwargs: Passed to ``tokenizer.decode``.
    """

    def __init__(
        self, tokenizer: Any, skip_prompt: bool = False, timeout: float | None = None, **decode_kwargs: Any
    ) -> None:
        super().__init__(tokenizer, skip_prompt, **decode_kwargs)
        self.text_queue: Queue = Queue()
        self.stop_signal = None
        self.timeout = timeout

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        self.text_queue.put(text, timeout=self.timeout)
        if stream_end:
            self.text_queue.put(self.stop_signal, timeout=self.timeout)

    def __iter__(self) -> TextIteratorStreamer:
        return self

    def __next__(self) -> str:
        value = self.text_queue.get(timeout=self.timeout)
        if value == self.stop_signal:
            raise StopIteration
        return value
