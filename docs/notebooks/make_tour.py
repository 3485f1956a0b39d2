"""Write ``conv2d_tour.ipynb`` from the cells below (run: python docs/notebooks/make_tour.py).

The notebook is kept here as Python so that a change reads as a diff; the ``.ipynb`` is stored
with its outputs stripped, and ``tests/test_notebook.py`` runs it top to bottom.
"""

from __future__ import annotations

from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parent / "conv2d_tour.ipynb"

# (kind, source): "md" cells are Markdown, "py" cells are code
CELLS: list[tuple[str, str]] = [
    ("md", """\
# A tour of Conv2d with npconv

Run this notebook top to bottom: every cell builds on the one before. It walks through what each
parameter of `Conv2d` does to the shapes (padding, stride, dilation, groups), the transposed
convolution, which inputs make one output, a picture, and a tiny CNN trained on handwritten digits.

npconv is PyTorch's convolution family on NumPy, so everything here reads like PyTorch but the
arrays are plain `numpy.ndarray`s. It needs `pip install 'npconv[demo]'` (scikit-learn's digits,
matplotlib and Pillow for the pictures)."""),
    ("py", """\
import numpy as np
import npconv
from npconv import nn, functional as F

npconv.manual_seed(0)            # the layers' random init, as torch.manual_seed
rng = np.random.default_rng(0)
print("npconv", npconv.__version__)"""),
    ("md", """\
## 1. Shapes

A `Conv2d(in_channels, out_channels, kernel_size)` takes a batch `(N, C_in, H, W)` and gives
`(N, C_out, H_out, W_out)`. Its weight holds one `kH x kW` filter per (output, input) channel pair."""),
    ("py", """\
# a batch of 4 RGB images, 32x32: (N, C, H, W)
images = rng.standard_normal((4, 3, 32, 32)).astype(np.float32)
conv = nn.Conv2d(3, 8, kernel_size=3)
out = conv(images)
print("weight", conv.weight.shape, "bias", conv.bias.shape)
print("Conv2d output:", out.shape)"""),
    ("md", """\
Along each spatial dim the output size is

    H_out = floor((H + 2*p - d*(k - 1) - 1) / s) + 1

with padding `p`, dilation `d`, kernel size `k` and stride `s`. A 3x3 window fits `32 - 3 + 1 = 30`
times across 32 pixels. The function below is the formula; the rest of the tour checks it against
the layers."""),
    ("py", """\
def out_size(size, k, stride=1, padding=0, dilation=1):
    return (size + 2 * padding - dilation * (k - 1) - 1) // stride + 1

print(out_size(32, 3))"""),
    ("md", """\
## 2. Padding

Padding adds `p` cells on each side before the window slides. With a 3x3 kernel, `padding=1` keeps
the size; `padding="same"` works it out for you. The padded cells are zeros unless `padding_mode`
says otherwise."""),
    ("py", """\
for padding in (0, 1, 2, "same"):
    y = nn.Conv2d(3, 8, 3, padding=padding)(images)
    print(f"padding={padding!r:7} -> {y.shape[2:]}")"""),
    ("py", """\
# padding_mode: what the padded cells hold (shown on a 1-D signal, kernel of ones)
signal = np.arange(1.0, 6.0).reshape(1, 1, 5)
ones = np.ones((1, 1, 3))
for mode in ("zeros", "reflect", "replicate", "circular"):
    print(f"{mode:9}", F.conv1d(signal, ones, padding=1, padding_mode=mode)[0, 0])"""),
    ("md", """\
## 3. Stride

The window jumps `s` cells at a time, so the output shrinks about `s` times per dim. When the
steps do not land exactly on the end, the last rows and columns are never read (the floor in the
formula)."""),
    ("py", """\
for stride in (1, 2, 3):
    y = nn.Conv2d(3, 8, 3, stride=stride, padding=1)(images)
    formula = out_size(32, 3, stride, padding=1)
    print(f"stride={stride}: {y.shape[2:]}, formula: {formula}")"""),
    ("md", """\
## 4. Dilation

Dilation spreads the kernel's taps `d` cells apart: a 3x3 kernel with `dilation=2` covers a 5x5
patch with the same 9 weights, so the layer sees further without more parameters."""),
    ("py", """\
for dilation in (1, 2, 4):
    y = nn.Conv2d(3, 8, 3, dilation=dilation)(images)
    reach = dilation * (3 - 1) + 1
    print(f"dilation={dilation}: covers {reach}x{reach}, output {y.shape[2:]}, "
          f"formula {out_size(32, 3, dilation=dilation)}")"""),
    ("md", """\
## 5. Groups, depthwise and pointwise

`groups=G` splits the channels into `G` independent convolutions: each output channel reads only
`C_in / G` input channels, so the weight is `(C_out, C_in / G, kH, kW)` and there are `G` times
fewer weights. `groups = C_in` is a *depthwise* convolution (one filter per channel); a 1x1
*pointwise* convolution after it mixes the channels again."""),
    ("py", """\
def n_params(layer):
    return sum(p.size for p in layer.parameters())

for groups in (1, 2, 4):
    layer = nn.Conv2d(8, 16, 3, groups=groups)
    print(f"groups={groups}: weight {layer.weight.shape}, {n_params(layer)} params")"""),
    ("py", """\
x8 = rng.standard_normal((1, 8, 16, 16)).astype(np.float32)
depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
pointwise = nn.Conv2d(8, 16, 1)
y = pointwise(depthwise(x8))
print("depthwise weight", depthwise.weight.shape, "-> separable output", y.shape)

# depthwise: output channel c is input channel c convolved with filter c alone
c = 5
alone = F.conv2d(x8[:, c:c + 1], depthwise.weight[c:c + 1], padding=1)
same = np.allclose(alone[0, 0], depthwise(x8)[0, c], atol=1e-5)
print("channel 5 on its own matches:", same)
print("parameters: full 3x3 conv", n_params(nn.Conv2d(8, 16, 3)),
      "vs depthwise + pointwise", n_params(depthwise) + n_params(pointwise))"""),
    ("md", """\
## 6. Cross-correlation

Like PyTorch's, npconv's "convolution" does not flip the kernel: it is a cross-correlation, the
same numbers as `scipy.signal.correlate2d`. `scipy.signal.convolve2d` flips the kernel, so it
agrees only after you flip it back."""),
    ("py", """\
from scipy import signal

image = rng.standard_normal((6, 6))
kernel = rng.standard_normal((3, 3))
ours = F.conv2d(image[None, None], kernel[None, None])[0, 0]
correlated = signal.correlate2d(image, kernel, mode="valid")
convolved = signal.convolve2d(image, kernel, mode="valid")
flipped = signal.convolve2d(image, kernel[::-1, ::-1], mode="valid")
print("equals correlate2d:", np.allclose(ours, correlated))
print("equals convolve2d: ", np.allclose(ours, convolved))
print("equals convolve2d with the kernel flipped:", np.allclose(ours, flipped))"""),
    ("md", """\
## 7. Transposed convolution

`ConvTranspose2d` goes the other way: each input cell spreads a kernel-sized patch over the output,
so a stride-2 transposed convolution roughly doubles the size. Its output size is

    H_out = (H - 1)*s - 2*p + d*(k - 1) + output_padding + 1

It is the gradient of a convolution with respect to its input: the layer that undoes a
`Conv2d`'s shape change (not its values)."""),
    ("py", """\
down = nn.Conv2d(3, 8, 3, stride=2, padding=1)
up = nn.ConvTranspose2d(8, 3, 3, stride=2, padding=1, output_padding=1)
small = down(images)
print("down:", images.shape, "->", small.shape)
print("ConvTranspose2d output:", up(small).shape)
print("formula:", (16 - 1) * 2 - 2 * 1 + 1 * (3 - 1) + 1 + 1)"""),
    ("py", """\
# the transposed convolution is conv2d's input gradient, computed by the same engine
grad_out = rng.standard_normal(small.shape).astype(np.float32)
w = down.weight
via_grad = npconv.grad.conv2d_input(images.shape, w, grad_out, stride=2, padding=1)
via_transpose = F.conv_transpose2d(grad_out, w, stride=2, padding=1, output_padding=1)
same = np.allclose(via_grad, via_transpose, atol=1e-5)
print("conv_transpose2d == conv2d_input:", same)"""),
    ("md", """\
## 8. Which inputs make one output

`npconv.explain.explain_output` lists every tap behind one output cell: which input it reads (or
that it falls on the padding), the weight, and the sum. Here the input is the numbers 0..35 and the
kernel is all ones, so the output is simply the sum of the inputs in its window."""),
    ("py", """\
from npconv.explain import explain_output

x = np.arange(36.0).reshape(1, 1, 6, 6)
w = np.ones((1, 1, 3, 3))
explanation = explain_output(x, w, (0, 0, 1, 0), stride=2, padding=1)
print(explanation.text())"""),
    ("md", """\
## 9. A picture

`npconv.explain.animate` draws a convolution output by output: the dark window is the current
output's taps, dashed cells are padding. This one is a 5x5 input, a 3x3 kernel, stride 2 and
padding 1 (try your own numbers)."""),
    ("py", """\
import tempfile
from pathlib import Path
from IPython.display import Image, display
from npconv.explain import animate

path = Path(tempfile.mkdtemp()) / "stride2.gif"
gif = animate(path, input_size=(5, 5), kernel_size=3, stride=2, padding=1)
display(Image(filename=str(gif)))"""),
    ("md", """\
## 10. Training a tiny CNN

Everything above is the forward pass. Every npconv module also has a `backward`, so a network
learns with plain NumPy: here a two-convolution CNN learns scikit-learn's 8x8 handwritten digits
for a few epochs (a few seconds)."""),
    ("py", """\
from sklearn.datasets import load_digits

digits = load_digits()
inputs = (digits.images / 16.0).astype(np.float32)[:, None]     # (1797, 1, 8, 8)
labels = digits.target
order = rng.permutation(len(inputs))
train, test = order[:1400], order[1400:]

model = nn.Sequential(
    nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),    # -> (N, 8, 4, 4)
    nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # -> (N, 16, 2, 2)
    nn.Flatten(), nn.Linear(16 * 2 * 2, 10))
criterion = nn.CrossEntropyLoss()
optimizer = npconv.optim.Adam(model.parameters(), lr=0.01)
print(model)"""),
    ("py", """\
losses = []
for epoch in range(5):
    model.train()
    epoch_loss = 0.0
    for start in range(0, len(train), 50):
        batch = train[start:start + 50]
        loss = criterion(model(inputs[batch]), labels[batch])
        optimizer.zero_grad()
        model.backward(criterion.backward())   # fills every parameter's .grad
        optimizer.step()
        epoch_loss += float(loss) * len(batch)
    losses.append(epoch_loss / len(train))
    print(f"epoch {epoch + 1}: loss {losses[-1]:.3f}")

model.eval()
accuracy = (model(inputs[test]).argmax(axis=1) == labels[test]).mean()
print(f"test accuracy {accuracy:.1%}")
assert losses[-1] < losses[0], "the loss should go down"
print("loss went down:", losses[-1] < losses[0])"""),
    ("py", """\
import matplotlib.pyplot as plt

fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3))
left.plot(range(1, len(losses) + 1), losses, marker="o")
left.set(xlabel="epoch", ylabel="cross-entropy loss", title="training loss")
filters = model[0].weight[:, 0]                 # the 8 learned 3x3 filters
right.imshow(np.hstack([np.pad(f, 1) for f in filters]), cmap="gray")
right.set(title="first layer's filters", xticks=[], yticks=[])
plt.show()"""),
    ("md", """\
## Where next

- the guide (`docs/guide.md`) goes through every parameter with exact numbers and a picture each;
- `npconv.explain.shape_report(model, (1, 1, 8, 8))` tabulates shapes, parameters and receptive
  fields of a chain of layers;
- the API reference (`make docs`) documents every function and class."""),
]


def build_notebook():
    """The notebook object: the cells above, no outputs, a Python 3 kernel."""
    import nbformat

    new_cell = {"md": nbformat.v4.new_markdown_cell, "py": nbformat.v4.new_code_cell}
    notebook = nbformat.v4.new_notebook(cells=[new_cell[kind](source) for kind, source in CELLS])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    for index, cell in enumerate(notebook.cells):  # stable ids: a rewrite changes only what changed
        cell["id"] = f"cell-{index:02d}"
    return notebook


def main() -> None:
    import nbformat

    notebook = build_notebook()
    nbformat.validate(notebook)
    NOTEBOOK.write_text(nbformat.writes(notebook) + "\n", encoding="utf-8")
    print(f"wrote {NOTEBOOK} ({len(notebook.cells)} cells)")


if __name__ == "__main__":
    main()
