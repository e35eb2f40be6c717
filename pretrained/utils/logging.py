"""transformers' logging controls, acting on the ``pretrained`` logger hierarchy.

Every logger of the library is a child of ``logging.getLogger("pretrained")``; these functions set its
level, handler and format the way ``transformers.utils.logging`` does for ``transformers``, so a program
that calls ``transformers.utils.logging.set_verbosity_info()`` sees the same lines from ``pretrained``.
Nothing is configured until one of them is called: importing the library never touches logging.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from logging import CRITICAL, DEBUG, ERROR, FATAL, INFO, NOTSET, WARN, WARNING  # noqa: F401  (re-exported)

_LIBRARY = "pretrained"
_lock = threading.Lock()
_default_handler: logging.Handler | None = None
_progress_bars = True

log_levels = {"detail": DEBUG, "debug": DEBUG, "info": INFO, "warning": WARNING, "error": ERROR,
              "critical": CRITICAL}
_EXPLICIT_FORMAT = "[%(levelname)s|%(filename)s:%(lineno)s] %(asctime)s >> %(message)s"


def _default_level() -> int:
    # transformers reads TRANSFORMERS_VERBOSITY; PRETRAINED_VERBOSITY wins when both are set.
    for variable in ("PRETRAINED_VERBOSITY", "TRANSFORMERS_VERBOSITY"):
        value = os.environ.get(variable)
        if value:
            if value in log_levels:
                return log_levels[value]
            logging.getLogger().warning(f"Unknown option {variable}={value}, has to be one of: "
                                        f"{', '.join(log_levels)}")
    return WARNING


def _root() -> logging.Logger:
    return logging.getLogger(_LIBRARY)


def _configure() -> None:
    """Give the library root logger its stderr handler and default level, once."""
    global _default_handler
    with _lock:
        if _default_handler is not None:
            return
        _default_handler = logging.StreamHandler()  # stderr
        _default_handler.setFormatter(logging.Formatter(f"[{_LIBRARY}] %(message)s"))
        root = _root()
        root.addHandler(_default_handler)
        root.setLevel(_default_level())
        # Like transformers: the library's lines go to its own handler, not twice through the root logger.
        root.propagate = os.environ.get("CI", "").upper() in {"1", "ON", "YES", "TRUE"}


def _reset() -> None:
    """Undo :func:`_configure` (remove the handler, level back to NOTSET, propagate again)."""
    global _default_handler
    with _lock:
        if _default_handler is None:
            return
        root = _root()
        root.removeHandler(_default_handler)
        root.setLevel(NOTSET)
        root.propagate = True
        _default_handler = None


def get_log_levels_dict() -> dict[str, int]:
    """The level names ``TRANSFORMERS_VERBOSITY`` / ``PRETRAINED_VERBOSITY`` accept, with their levels."""
    return log_levels


def get_logger(name: str | None = None) -> logging.Logger:
    """A logger in the library's hierarchy (the library root logger when ``name`` is None)."""
    _configure()
    return logging.getLogger(_LIBRARY if name is None else name)


def get_verbosity() -> int:
    """The library root logger's effective level (``logging.WARNING`` unless changed)."""
    _configure()
    return _root().getEffectiveLevel()


def set_verbosity(verbosity: int) -> None:
    """Set the library root logger's level (``logging.INFO``, ``pretrained.utils.logging.DEBUG``, ...)."""
    _configure()
    _root().setLevel(verbosity)


def set_verbosity_info() -> None:
    """Show INFO and above."""
    set_verbosity(INFO)


def set_verbosity_warning() -> None:
    """Show WARNING and above (the default)."""
    set_verbosity(WARNING)


def set_verbosity_debug() -> None:
    """Show everything."""
    set_verbosity(DEBUG)


def set_verbosity_error() -> None:
    """Show ERROR and above."""
    set_verbosity(ERROR)


def disable_default_handler() -> None:
    """Detach the library's stderr handler."""
    _configure()
    assert _default_handler is not None
    _root().removeHandler(_default_handler)


def enable_default_handler() -> None:
    """Attach the library's stderr handler (attached by default)."""
    _configure()
    assert _default_handler is not None
    _root().addHandler(_default_handler)


def add_handler(handler: logging.Handler) -> None:
    """Attach ``handler`` to the library root logger."""
    _configure()
    if handler is None:
        raise ValueError("add_handler() needs a logging.Handler, got None.")
    _root().addHandler(handler)


def remove_handler(handler: logging.Handler) -> None:
    """Detach ``handler`` from the library root logger."""
    _configure()
    if handler is None or handler not in _root().handlers:
        raise ValueError(f"{handler!r} is not a handler of the {_LIBRARY!r} logger.")
    _root().removeHandler(handler)


def disable_propagation() -> None:
    """Stop the library's records reaching the root logger (the default)."""
    _configure()
    _root().propagate = False


def enable_propagation() -> None:
    """Let the library's records reach the root logger too (then detach the default handler to avoid
    printing them twice)."""
    _configure()
    _root().propagate = True


def enable_explicit_format() -> None:
    """Format every handler of the library root logger as ``[LEVEL|file:line] time >> message``."""
    for handler in _root().handlers:
        handler.setFormatter(logging.Formatter(_EXPLICIT_FORMAT))


def reset_format() -> None:
    """Give every handler of the library root logger the plain ``logging`` format back."""
    for handler in _root().handlers:
        handler.setFormatter(None)


def captureWarnings(capture: bool) -> None:  # noqa: N802  (transformers' name)
    """Route ``warnings.warn`` messages through the ``py.warnings`` logger at the library's level
    (``capture=True``), or stop doing so."""
    logger = logging.getLogger("py.warnings")
    if not logger.handlers and _default_handler is not None:
        logger.addHandler(_default_handler)
    logger.setLevel(_root().level)
    logging.captureWarnings(capture)


def is_progress_bar_enabled() -> bool:
    """Whether the library shows tqdm progress bars."""
    return _progress_bars


def enable_progress_bar() -> None:
    """Show tqdm progress bars (the default)."""
    global _progress_bars
    _progress_bars = True


def disable_progress_bar() -> None:
    """Hide tqdm progress bars."""
    global _progress_bars
    _progress_bars = False


class CaptureLogger:
    """Collect what ``logger`` writes inside a ``with`` block into ``.out`` (run_clm.py uses it to spot
    tokenizer warnings)::

        with CaptureLogger(logger) as captured:
            ...
        "warning text" in captured.out
    """

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.out = ""

    def __enter__(self) -> CaptureLogger:
        self.logger.addHandler(self.handler)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self.handler)
        self.out = self.stream.getvalue()

    def __repr__(self) -> str:
        return f"captured: {self.out}\n"


__all__ = [
    "CaptureLogger", "CRITICAL", "DEBUG", "ERROR", "FATAL", "INFO", "NOTSET", "WARN", "WARNING", "add_handler",
    "captureWarnings", "disable_default_handler", "disable_progress_bar", "disable_propagation",
    "enable_default_handler", "enable_explicit_format", "enable_progress_bar", "enable_propagation",
    "get_log_levels_dict", "get_logger", "get_verbosity", "is_progress_bar_enabled", "remove_handler",
    "reset_format", "set_verbosity", "set_verbosity_debug", "set_verbosity_error", "set_verbosity_info",
    "set_verbosity_warning",
]
