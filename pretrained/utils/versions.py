"""Version checks: the transformers API level ``pretrained`` implements, and installed-package checks."""

from __future__ import annotations

import importlib.metadata
import operator
import re
import sys

from packaging import version

# The transformers release whose public API and file formats pretrained follows. Example scripts'
# check_min_version() and, under the alias runner, ``transformers.__version__`` report this level.
TRANSFORMERS_API_VERSION = "5.24.0"

_OPERATORS = {"<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne, ">=": operator.ge,
              ">": operator.gt}
_REQUIREMENT = re.compile(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*)$")
_CONDITION = re.compile(r"^\s*(<=|>=|==|!=|<|>)\s*([^\s]+)\s*$")


def check_min_version(min_version: str) -> None:
    """Raise ``ImportError`` if the transformers API level pretrained implements is older than
    ``min_version`` (what transformers' example scripts call at import)."""
    if version.parse(TRANSFORMERS_API_VERSION) < version.parse(min_version):
        raise ImportError(
            f"This program requires transformers {min_version} or newer; pretrained implements the "
            f"transformers {TRANSFORMERS_API_VERSION} API."
        )


def require_version(requirement: str, hint: str | None = None) -> None:
    """Check that an installed package satisfies ``requirement`` (``"datasets>=1.8.0"``,
    ``"tokenizers>=0.20,<1"``, ``"numpy"``, ``"python>=3.10"``).

    Raises:
        importlib.metadata.PackageNotFoundError: the package is not installed.
        ImportError: its version does not satisfy the requirement.
        ValueError: the requirement cannot be read.
    """
    hint = f"\n{hint}" if hint else ""
    match = _REQUIREMENT.match(requirement.strip())
    if match is None:
        raise ValueError(f"require_version: cannot read the requirement {requirement!r} "
                         "(expected e.g. 'datasets>=1.8.0').")
    package, _, conditions = match.groups()
    wanted = []
    for condition in filter(None, (c.strip() for c in conditions.split(","))):
        parsed = _CONDITION.match(condition)
        if parsed is None:
            raise ValueError(f"require_version: cannot read {condition!r} in {requirement!r}; "
                             f"operators: {', '.join(_OPERATORS)}.")
        wanted.append(parsed.groups())
    if package == "python":
        got = ".".join(map(str, sys.version_info[:3]))
    else:
        try:
            got = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            raise importlib.metadata.PackageNotFoundError(
                f"The '{requirement}' distribution was not found and is required by this program.{hint}"
            ) from None
        if package == "transformers":  # under the alias runner this is pretrained's API level
            got = max(got, TRANSFORMERS_API_VERSION, key=version.parse)
    for op, bound in wanted:
        if not _OPERATORS[op](version.parse(got), version.parse(bound)):
            raise ImportError(f"{requirement} is required for a normal functioning of this program, "
                              f"but found {package}=={got}.{hint}")


def require_version_core(requirement: str) -> None:
    """:func:`require_version` with the hint transformers gives for its own dependencies."""
    require_version(requirement, "Try: `pip install -U pretrained`.")
