"""papermill reads (and writes) Jupytext text notebooks: ``papermill --help-notebook nb.py``.

papermill 2.x only reads ``.ipynb`` JSON. It loads every object of the ``papermill.io``
entry-point group when ``papermill.iorw`` is imported and registers it as the I/O handler of the
URL scheme named by the entry point. This project declares one (``pyproject.toml``)::

    [project.entry-points."papermill.io"]
    "file://" = "modadd.papermill_io:handler"

Loading it does two things:

* papermill's own local-file handler (the one that serves plain paths) is taught the Jupytext
  text formats: reading a path whose extension is a Jupytext notebook extension other than
  ``.ipynb`` (``.py``, ``.md``, ...) returns the notebook converted to ipynb JSON, and writing to
  such a path writes the text format (in the format recorded in the notebook's ``jupytext``
  metadata when its extension matches, e.g. ``py:percent``; outputs are dropped, as Jupytext
  does). Every other path is untouched.
* ``file://`` URLs, which papermill does not know otherwise, are served by the same handler.

papermill imports it on every ``import papermill``; ``modadd/__init__`` loads its exports lazily,
so this import does not pull in torch (``tests/test_sweep.py`` checks).
"""
from __future__ import annotations

import os
import re
import warnings
from typing import Any, Callable

FILE_SCHEME = "file://"
_MARK = "_modadd_jupytext"
# papermill warns about every input notebook whose name does not end in .ipynb/.json; silence it
# for the common text-notebook extensions (hard-coded: importing jupytext here costs 0.5 s).
_QUIET_EXTENSIONS = ("py", "md", "markdown", "myst", "mystnb", "mnb", "Rmd", "qmd", "R", "r", "jl")
warnings.filterwarnings(
    "ignore", category=UserWarning,
    message=r"The specified file \(.*\.(%s)\) does not end in one of \['\.ipynb', '\.json'\]"
    % "|".join(map(re.escape, _QUIET_EXTENSIONS)))


def text_notebook_extension(path: Any) -> str | None:
    """The extension of ``path`` if it names a Jupytext text notebook (not ``.ipynb``), else None."""
    if not isinstance(path, str):
        return None
    from jupytext.formats import NOTEBOOK_EXTENSIONS
    ext = os.path.splitext(path.split("?")[0])[1]
    return ext if ext in NOTEBOOK_EXTENSIONS and ext != ".ipynb" else None


def text_to_ipynb(text: str, ext: str) -> str:
    """Convert a Jupytext text notebook (its ``text`` and extension) to nbformat-4 JSON.

    A notebook without a kernelspec (a script without a Jupytext header) gets the kernel of its
    language, as papermill needs one to find the parameters cell's language."""
    import jupytext
    import nbformat
    nb = jupytext.reads(text, fmt=ext[1:])
    if "kernelspec" not in nb.metadata:
        language = nb.metadata.get("jupytext", {}).get("main_language") or "python"
        if language == "python":
            nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                         "language": "python"}
        else:
            nb.metadata.setdefault("language_info", {"name": language})
    return nbformat.writes(nb)


def ipynb_to_text(buf: str, ext: str) -> str:
    """Convert nbformat JSON to the Jupytext text format of extension ``ext``."""
    import jupytext
    import nbformat
    nb = nbformat.reads(buf, as_version=4)
    recorded = nb.metadata.get("jupytext", {}).get("text_representation", {})
    fmt = ext[1:]
    if recorded.get("extension") == ext and recorded.get("format_name"):
        fmt = f"{fmt}:{recorded['format_name']}"
    elif ext == ".py":
        fmt = "py:percent"          # the project's format
    return jupytext.writes(nb, fmt=fmt)


def _jupytext_read(read: Callable[[str], Any]) -> Callable[[str], Any]:
    def wrapped(path: str) -> Any:
        text = read(path)
        ext = text_notebook_extension(path)
        if ext is None:
            return text
        if isinstance(text, (bytes, bytearray)):
            text = text.decode("utf-8")
        return text_to_ipynb(text, ext)
    wrapped.__doc__ = read.__doc__
    setattr(wrapped, _MARK, True)
    return wrapped


def _jupytext_write(write: Callable[[str, str], Any]) -> Callable[[str, str], Any]:
    def wrapped(buf: str, path: str) -> Any:
        ext = text_notebook_extension(path)
        return write(buf if ext is None else ipynb_to_text(buf, ext), path)
    wrapped.__doc__ = write.__doc__
    setattr(wrapped, _MARK, True)
    return wrapped


def _strip_scheme(path: str) -> str:
    return path[len(FILE_SCHEME):] if path.startswith(FILE_SCHEME) else path


class FileURLHandler:
    """papermill I/O handler of ``file://`` URLs: the local handler, on the URL's path."""

    def __init__(self, local: Any) -> None:
        self.local = local

    def read(self, path: str) -> Any:
        """The file's text (a Jupytext text notebook converted to ipynb JSON)."""
        return self.local.read(_strip_scheme(path))

    def write(self, buf: str, path: str) -> Any:
        """Write ``buf`` (ipynb JSON) to the file, as text when its extension asks for it."""
        return self.local.write(buf, _strip_scheme(path))

    def listdir(self, path: str) -> list[str]:
        """The folder's entries, as ``file://`` URLs."""
        return [FILE_SCHEME + p for p in self.local.listdir(_strip_scheme(path))]

    def pretty_path(self, path: str) -> str:
        """The URL itself."""
        return path


def install(io: Any, url_handler: FileURLHandler | None = None) -> FileURLHandler:
    """Teach the local-file handler of papermill's I/O registry ``io`` the Jupytext text formats
    (idempotent) and return ``url_handler`` (a new one if None), bound to it, for ``file://``."""
    local = io.get_handler("local")
    if not getattr(local.read, _MARK, False):
        local.read = _jupytext_read(local.read)
    if not getattr(local.write, _MARK, False):
        local.write = _jupytext_write(local.write)
    url_handler = url_handler or FileURLHandler(local)
    url_handler.local = local
    return url_handler


# papermill loads ``handler`` while ``papermill.iorw`` is being imported (the import below then
# returns that module as it stands: ``papermill_io`` is defined by then). Imported on its own,
# this module imports papermill, whose entry-point loader then finds ``handler`` already here.
handler = FileURLHandler(None)
from papermill.iorw import papermill_io as _papermill_io  # noqa: E402

install(_papermill_io, handler)
