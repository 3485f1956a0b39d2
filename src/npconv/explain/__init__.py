"""Why every output is what it is: shapes, footprints, the convolution matrix, pictures.

Everything here answers from the engine's own index arithmetic (:mod:`npconv.spec` and
:func:`npconv.windows.tap_sources`), never from a second implementation.

- :func:`shape_report`: sizes, pads, parameters, multiply-adds, receptive field through a chain;
- :func:`solve` / :func:`translate`: pads for a wanted size, said in PyTorch/Keras/ONNX terms;
- :func:`explain_output`, :func:`explain_transposed_output`, :func:`explain_input`: the inputs
  and weights behind one output, and the outputs one input reaches;
- :func:`explain_deform_output`: one output of a deformable convolution, tap by tap (sample
  point, bilinear corners, mask, weight), beside :func:`npconv.ops.deform_conv2d`'s value;
- :func:`conv_matrix`: the sparse ``C`` with ``conv(x).ravel() == C @ x.ravel()``;
- :func:`animate`, :func:`receptive_field_png` (Pillow) and :func:`write_page` (one HTML file).

The pictures import Pillow only when they draw (``pip install 'npconv[explain]'``), so every
name here imports without it.  :mod:`npconv.explain.animation` holds the GIF writer and
:mod:`npconv.explain.pictures` the drawing.
"""

from .animation import animate
from .deform import BilinearCorner, DeformExplanation, DeformTerm, deformable_example, explain_deform_output
from .footprint import Explanation, Reach, Term, explain_input, explain_output, explain_transposed_output
from .html import write_page
from .matrix import conv_matrix
from .pictures.receptive_field import receptive_field, receptive_field_png
from .shapes import LayerShape, ShapeReport, shape_report
from .solve import Solution, solve, translate

__all__ = ["Explanation", "Reach", "Term", "explain_input", "explain_output", "explain_transposed_output",
           "conv_matrix", "LayerShape", "ShapeReport", "shape_report", "Solution", "solve", "translate",
           "animate", "receptive_field", "receptive_field_png", "write_page",
           "BilinearCorner", "DeformExplanation", "DeformTerm", "explain_deform_output", "deformable_example"]
