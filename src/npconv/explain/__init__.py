"""Why every output is what it is: shapes, footprints, the convolution matrix, pictures.

Everything here answers from the engine's own index arithmetic (:mod:`npconv.spec` and
:func:`npconv.windows.tap_sources`), never from a second implementation.
"""

from .footprint import Explanation, Reach, Term, explain_input, explain_output, explain_transposed_output
from .matrix import conv_matrix

__all__ = ["Explanation", "Reach", "Term", "explain_input", "explain_output",
           "explain_transposed_output", "conv_matrix"]
