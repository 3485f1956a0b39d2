"""Write the guide's pictures into docs/images (run: python docs/make_pictures.py).

Each picture is ``npconv.explain.animate`` (or ``receptive_field_png``) of one spec; the test
suite checks that every picture the guide shows is here and has the frames its spec implies.
``stream_state_png`` draws the streaming state of a dilated causal kernel with matplotlib.
"""

from pathlib import Path

from npconv import nn
from npconv.explain import animate, receptive_field_png

IMAGES = Path(__file__).resolve().parent / "images"

# name -> animate's keyword arguments
PICTURES = {
    "standard": dict(input_size=(5, 5), kernel_size=3, padding=1, in_channels=2),
    "stride": dict(input_size=(6, 6), kernel_size=3, stride=2),
    "padding": dict(input_size=(5, 5), kernel_size=3, padding=1),
    "dilation": dict(input_size=(7, 7), kernel_size=3, dilation=2),
    "groups": dict(input_size=(4, 4), kernel_size=3, padding=1, groups=2, in_channels=4, out_channels=2),
    "reflect": dict(input_size=(4, 4), kernel_size=3, padding=2, padding_mode="reflect"),
    "transposed": dict(input_size=(3, 3), kernel_size=3, stride=2, transposed=True, output_padding=1),
    "conv1d": dict(input_size=(9,), kernel_size=3, padding=1),
}
# the streaming picture's kernel: k taps, dilation d, the newest output at time t
STREAM_STATE = dict(kernel_size=3, dilation=2, newest=11)
RECEPTIVE_FIELD = ([nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3, stride=2), nn.Conv2d(1, 1, 3, dilation=2)], (1, 1, 17, 17))


def stream_state_png(path: Path, kernel_size: int, dilation: int, newest: int) -> Path:
    """Write a PNG of a causal dilated kernel over time: the taps of the newest output y[t], those
    of the next output y[t+1], and the ``dilation*(kernel_size-1)`` samples the state keeps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    k, d, t = kernel_size, dilation, newest
    history = d * (k - 1)
    fig, ax = plt.subplots(figsize=(8, 3.2))
    for i in range(t + 2):  # the input samples 0 ... t, and t+1 not yet arrived
        kept, future = t - history < i <= t, i == t + 1
        ax.add_patch(Rectangle((i, 0), 0.9, 0.9, facecolor="#f4b183" if kept else "white" if future else "#cfe2f3",
                               edgecolor="black", ls="--" if future else "-"))
        ax.text(i + 0.45, -0.35, "t+1" if future else "t" if i == t else f"t-{t - i}",
                ha="center", va="center", fontsize=8)
    for out, row, colour in ((t, 2.0, "#1f4e79"), (t + 1, 3.1, "#7f6000")):
        ax.add_patch(Rectangle((out, row), 0.9, 0.9, facecolor=colour, edgecolor="black"))
        ax.text(out + 0.45, row + 0.45, "y[t]" if out == t else "y[t+1]", color="white", ha="center",
                va="center", fontsize=8)
        for j in range(k):  # tap j reads x[out - d*(k-1-j)]
            source = out - d * (k - 1 - j)
            ax.plot([source + 0.45, out + 0.45], [0.9, row], color=colour, lw=1.5)
            ax.plot(source + 0.45, 0.7, "o", color=colour, ms=5)
    ax.add_patch(Rectangle((t - history + 1 - 0.05, -0.08), history - 0.05 + 0.1, 1.06, fill=False,
                           edgecolor="#c55a11", lw=2.5))
    ax.text(t + 0.9, -0.8, f"the state after y[t]: the last d*(k-1) = {history} samples, all that y[t+1] "
            "needs besides x[t+1]", ha="right", va="top", color="#c55a11", fontsize=9, fontweight="bold")
    ax.text(-0.1, 4.3, f"kernel_size k = {k}, dilation d = {d}: output y[t] reads x[t], x[t-{d}], ..., x[t-{history}]",
            fontsize=9, va="bottom")
    ax.text(t + 2.1, 0.45, "input x\n(time \u2192)", fontsize=8, va="center")
    ax.set_xlim(-0.3, t + 3.6)
    ax.set_ylim(-1.3, 4.8)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return Path(path)


def main() -> None:
    IMAGES.mkdir(exist_ok=True)
    for name, options in PICTURES.items():
        print("wrote", animate(IMAGES / f"{name}.gif", **options))
    layers, shape = RECEPTIVE_FIELD
    print("wrote", receptive_field_png(IMAGES / "receptive_field.png", layers, shape))
    print("wrote", stream_state_png(IMAGES / "stream_state.png", **STREAM_STATE))


if __name__ == "__main__":
    main()
