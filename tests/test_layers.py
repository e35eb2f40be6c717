"""Layers point one way (docs/design.md): ``loading`` knows no models, ``modeling`` knows no families,
generation or tasks, models know no speed transforms or programs.

Every import in the source counts, including those inside functions and ``TYPE_CHECKING`` blocks.
"""

import ast
from pathlib import Path

import pytest

import pretrained

ROOT = Path(pretrained.__file__).parent
ABOVE_MODELING = ("pretrained.models", "pretrained.generation", "pretrained.pipelines", "pretrained.training",
                  "pretrained.inference", "pretrained.tokenization", "pretrained.embed", "pretrained.cli",
                  "pretrained.processing")
PROGRAMS = ("pretrained.pipelines", "pretrained.training", "pretrained.embed", "pretrained.cli")
FORBIDDEN = {
    "modeling": ABOVE_MODELING,
    "loading": ("pretrained.modeling", *ABOVE_MODELING),
    # quantized layers call the decode kernels of `inference` (speed code), nothing else above modeling
    "quantizers": ("pretrained.modeling", *(m for m in ABOVE_MODELING if m != "pretrained.inference")),
    "tokenization": ("pretrained.modeling", "pretrained.loading",
                     *(m for m in ABOVE_MODELING if m != "pretrained.tokenization")),
    # Processors sit beside tokenization: a multimodal processor holds a tokenizer, nothing above.
    "processing": ("pretrained.modeling", "pretrained.loading",
                   *(m for m in ABOVE_MODELING if m not in ("pretrained.tokenization", "pretrained.processing"))),
    "utils": ("pretrained.modeling", "pretrained.loading", *ABOVE_MODELING),
    "inference": ("pretrained.models", "pretrained.generation", "pretrained.tokenization", "pretrained.processing",
                  *PROGRAMS),
    "models": ("pretrained.generation", "pretrained.inference", "pretrained.tokenization", "pretrained.processing",
               *PROGRAMS),
    "generation": PROGRAMS,
    # Plans are data on configs and model classes: distributed shards plain modules, knowing no family.
    "distributed": ("pretrained.models", "pretrained.generation", "pretrained.inference", "pretrained.tokenization",
                    "pretrained.processing", *PROGRAMS),
}
# The one upward import the design writes down: a model that generates lists GenerationMixin.
ALLOWED = {"models": ("pretrained.generation", "pretrained.generation.mixin", "pretrained.generation.mixin.GenerationMixin")}


def imported_modules(source: str, package: str) -> set[str]:
    """Every module a file of ``package`` imports (``from a import b`` counts as ``a`` and ``a.b``)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
              == "import_module" and node.args and isinstance(node.args[0], ast.Constant)):
            found.add(str(node.args[0].value))
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_point_down(layer):
    files = sorted((ROOT / layer).rglob("*.py"))
    assert files
    wrong = {f"{path.relative_to(ROOT)} imports {module}"
             for path in files for module in imported_modules(path.read_text(encoding="utf-8"), _package(path))
             for banned in FORBIDDEN[layer] if module == banned or module.startswith(banned + ".")
             if module not in ALLOWED.get(layer, ())}
    assert not wrong, sorted(wrong)


def _package(path: Path) -> str:
    return ".".join(path.relative_to(ROOT.parent).parts[:-1])


def test_the_walker_sees_lazy_and_relative_imports():
    source = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pretrained.modeling import base\n"
              "def f():\n    from ..models import auto\n    import importlib\n"
              "    importlib.import_module('pretrained.generation.utils')\n")
    found = imported_modules(source, "pretrained.loading")
    assert "pretrained.modeling.base" in found
    assert {"pretrained.models", "pretrained.models.auto", "pretrained.generation.utils"} <= found
