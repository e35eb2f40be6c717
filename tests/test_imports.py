"""`import pretrained` is lazy and the library never imports transformers."""

import subprocess
import sys


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout


def test_import_is_lazy():
    out = _run("import sys, pretrained; print('torch' in sys.modules, 'transformers' in sys.modules)")
    assert out.split() == ["False", "False"]


def test_unknown_name_is_attribute_error():
    import pretrained

    try:
        pretrained.NoSuchThing  # noqa: B018
    except AttributeError as e:
        assert "NoSuchThing" in str(e)
    else:
        raise AssertionError("expected AttributeError")


def test_library_never_imports_transformers():
    # Import every module of the package and check transformers stayed out.
    code = """
import importlib, pkgutil, sys
import pretrained
for m in pkgutil.walk_packages(pretrained.__path__, 'pretrained.'):
    if m.name.endswith('__main__') or m.name == 'pretrained.embed':
        continue
    importlib.import_module(m.name)
print('transformers' in sys.modules)
"""
    assert _run(code).strip() == "False"
