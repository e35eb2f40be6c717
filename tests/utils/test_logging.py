"""pretrained.utils.logging: transformers' verbosity, handler and format controls on the pretrained loggers."""

import io
import logging

import pytest

from pretrained.utils import logging as plog


@pytest.fixture(autouse=True)
def fresh_library_logger(monkeypatch):
    monkeypatch.delenv("PRETRAINED_VERBOSITY", raising=False)
    monkeypatch.delenv("TRANSFORMERS_VERBOSITY", raising=False)
    monkeypatch.delenv("CI", raising=False)
    plog._reset()
    yield
    plog.reset_format()
    plog._reset()


def test_nothing_is_configured_until_asked():
    assert plog._default_handler is None
    assert logging.getLogger("pretrained").level == logging.NOTSET


def test_verbosity_functions_set_the_library_root_level():
    assert plog.get_verbosity() == logging.WARNING
    for setter, level in [(plog.set_verbosity_info, logging.INFO), (plog.set_verbosity_debug, logging.DEBUG),
                          (plog.set_verbosity_error, logging.ERROR), (plog.set_verbosity_warning, logging.WARNING)]:
        setter()
        assert plog.get_verbosity() == level == logging.getLogger("pretrained").level
    plog.set_verbosity(plog.INFO)
    assert logging.getLogger("pretrained.training.trainer").getEffectiveLevel() == logging.INFO


def test_library_lines_reach_the_default_handler_with_the_explicit_format():
    plog.set_verbosity_info()
    stream = io.StringIO()
    plog._default_handler.setStream(stream)
    plog.enable_explicit_format()
    logging.getLogger("pretrained.training.trainer").info("***** Running training *****")
    line = stream.getvalue()
    assert line.startswith("[INFO|test_logging.py:") and line.rstrip().endswith(">> ***** Running training *****")
    plog.reset_format()
    plog.disable_default_handler()
    logging.getLogger("pretrained.training.trainer").info("hidden")
    assert "hidden" not in stream.getvalue()
    plog.enable_default_handler()
    logging.getLogger("pretrained").info("shown")
    assert stream.getvalue().endswith("shown\n")


def test_handlers_and_propagation():
    handler = logging.Handler()
    plog.add_handler(handler)
    assert handler in logging.getLogger("pretrained").handlers
    plog.remove_handler(handler)
    with pytest.raises(ValueError, match="not a handler"):
        plog.remove_handler(handler)
    assert logging.getLogger("pretrained").propagate is False  # as transformers: its own handler only
    plog.enable_propagation()
    assert logging.getLogger("pretrained").propagate is True
    plog.disable_propagation()
    assert logging.getLogger("pretrained").propagate is False


def test_get_logger_is_in_the_library_hierarchy():
    assert plog.get_logger().name == "pretrained"
    assert plog.get_logger("pretrained.foo").parent is logging.getLogger("pretrained")


@pytest.mark.parametrize("variable", ["TRANSFORMERS_VERBOSITY", "PRETRAINED_VERBOSITY"])
def test_environment_sets_the_default_level(monkeypatch, variable):
    monkeypatch.setenv(variable, "error")
    assert plog.get_verbosity() == logging.ERROR


def test_progress_bar_switch():
    plog.disable_progress_bar()
    assert not plog.is_progress_bar_enabled()
    plog.enable_progress_bar()
    assert plog.is_progress_bar_enabled()


def test_same_functions_as_transformers():
    transformers_logging = pytest.importorskip("transformers.utils.logging")
    ours = {n for n in plog.__all__ if not n.isupper()}
    public = {n for n in dir(transformers_logging) if n[0].islower() and callable(getattr(transformers_logging, n))
              and getattr(getattr(transformers_logging, n), "__module__", "") == transformers_logging.__name__}
    missing = public - ours - {"warning_advice", "warning_once", "info_once", "set_tqdm_hook", "tqdm"}
    assert not missing


def test_capture_logger_collects_what_a_logger_writes():
    logger = logging.getLogger("pretrained.tokenization.test")
    logger.setLevel(logging.WARNING)
    with plog.CaptureLogger(logger) as captured:
        logger.warning("Token indices sequence length is longer than the specified maximum")
    logger.warning("after the block")
    assert captured.out == "Token indices sequence length is longer than the specified maximum\n"
    assert not logger.handlers
