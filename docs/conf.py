"""Sphinx configuration of npconv's API reference site (`make docs`, warnings as errors).

The pages: ``index.rst`` (overview and the table of contents), ``guide.md`` (MyST), ``gallery.rst``
(the pictures in ``images/``), ``notebooks/conv2d_tour.ipynb`` (shown as a page by
:func:`notebook_as_markdown`, below) and ``api/*.rst`` (one page per public module, autodoc reads
the numpydoc docstrings).
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

DOCS = Path(__file__).resolve().parent

project = "npconv"
author = "the npconv developers"
copyright = "the npconv developers, MIT licence"
release = importlib.metadata.version("npconv")  # what npconv.__version__ reads
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
]

# .ipynb pages go through the MyST parser after notebook_as_markdown has turned them into Markdown
source_suffix = {".rst": "restructuredtext", ".md": "markdown", ".ipynb": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_intersphinx", "**/.ipynb_checkpoints"]

# autodoc: members in source order. Signatures show names and defaults only, as NumPy's and
# SciPy's references do: the numpydoc Parameters/Returns sections give each type in words, and the
# annotations (for type checkers, py.typed) would repeat them, numpy.typing.ArrayLike expanded
# into a ten-line union (autodoc_type_aliases renders "ArrayLike | None" as a repr in Sphinx 9.0)
autodoc_member_order = "bysource"
autodoc_typehints = "none"
autodoc_default_options = {"members": True, "show-inheritance": True}
# numpydoc: a class's members get their own entries from autodoc; numpydoc's member tables would
# describe the same objects a second time (duplicate-object warnings)
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = False

# MyST: the guide's headings get anchors, its ``` fences stay code (its >>> lines are doctests)
myst_heading_anchors = 3

html_theme = "alabaster"
html_title = f"npconv {release}"
html_theme_options = {
    "description": "PyTorch's convolution family on NumPy: exact, fast, explained.",
    "fixed_sidebar": True,
    "page_width": "1240px",
}


def intersphinx_inventories(names: dict[str, str], folder: Path, online: bool) -> dict:
    """Map each project to its inventory: a file in ``folder`` if there, else the web if allowed.

    A build without network (the tests, CI) must not warn: a project with no local inventory and
    no permission to go online is left out, so its names are plain text instead of links.
    Saving ``<url>objects.inv`` as ``_intersphinx/<name>.inv`` turns its links on offline;
    ``NPCONV_DOCS_ONLINE=1`` fetches the inventories instead.
    """
    mapping = {}
    for name, url in names.items():
        local = folder / f"{name}.inv"
        if local.is_file():
            mapping[name] = (url, str(local))
        elif online:
            mapping[name] = (url, None)
    return mapping


intersphinx_mapping = intersphinx_inventories(
    {"numpy": "https://numpy.org/doc/stable/", "scipy": "https://docs.scipy.org/doc/scipy/",
     "python": "https://docs.python.org/3/"},
    DOCS / "_intersphinx", online=os.environ.get("NPCONV_DOCS_ONLINE") == "1")
intersphinx_timeout = 10


def notebook_markdown(notebook_text: str, download_name: str) -> str:
    """The notebook as MyST Markdown: its Markdown cells as they are, code cells as fences.

    Outputs are stripped in the stored notebook, so the page shows what a learner types; a link
    at the top downloads the ``.ipynb`` to run it.

    >>> import nbformat
    >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Tour"),
    ...                                      nbformat.v4.new_code_cell("1 + 1")])
    >>> print(notebook_markdown(nbformat.writes(nb), "tour.ipynb"))
    # Tour
    <BLANKLINE>
    {download}`Download the notebook <tour.ipynb>` and run it top to bottom with Jupyter.
    <BLANKLINE>
    ```python
    1 + 1
    ```
    <BLANKLINE>
    """
    import nbformat

    notebook = nbformat.reads(notebook_text, as_version=4)
    parts = []
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            parts.append(cell.source)
        elif cell.cell_type == "code":
            parts.append(f"```python\n{cell.source}\n```")
        if len(parts) == 1:  # under the title: where to get the runnable file
            parts.append(f"{{download}}`Download the notebook <{download_name}>` "
                         "and run it top to bottom with Jupyter.")
    return "\n\n".join(parts) + "\n"


def notebook_as_markdown(app, docname: str, source: list[str]) -> None:
    """Sphinx ``source-read`` hook: replace a notebook's JSON with its Markdown text."""
    path = Path(app.env.doc2path(docname))
    if path.suffix == ".ipynb":
        source[0] = notebook_markdown(source[0], path.name)


def setup(app) -> dict:
    app.connect("source-read", notebook_as_markdown)
    return {"parallel_read_safe": True}
