"""``show_source``: print a library function in the notebook, so the code shown is the code run."""

from __future__ import annotations

import inspect
import pathlib
from collections.abc import Callable
from typing import Any


class SourceCode:
    """A function's source, rendered as a highlighted Python block in Jupyter.

    ``_repr_markdown_`` gives a fenced code block (highlighted by JupyterLab and by GitHub's
    notebook viewer); ``str()`` gives the plain text.
    """

    def __init__(self, obj: Any):
        try:
            obj = inspect.unwrap(obj)  # a decorated function: the decorator's file is not the source's
            lines, first = inspect.getsourcelines(obj)
            path = inspect.getsourcefile(obj)
        except (TypeError, OSError) as err:
            raise TypeError(f"show_source needs a Python function, class or method, got {obj!r}") from err
        self.text = "".join(lines).rstrip()
        self.first_line = first
        self.location = _short_path(path) if path else "<unknown>"
        self.name = getattr(obj, "__qualname__", repr(obj))

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"# {self.location}:{self.first_line}\n{self.text}"

    def _repr_markdown_(self) -> str:
        return f"`{self.location}`, line {self.first_line}\n\n```python\n{self.text}\n```"


def _short_path(path: str) -> str:
    parts = pathlib.Path(path).parts
    if "toyalgos" in parts:
        return "/".join(parts[len(parts) - 1 - parts[::-1].index("toyalgos") :])
    return pathlib.Path(path).name


def show_source(obj: Callable[..., Any] | type) -> SourceCode:
    """Return ``obj``'s source code, displayed as a highlighted block when it ends a cell."""
    return SourceCode(obj)
