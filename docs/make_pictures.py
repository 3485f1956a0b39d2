"""Write the guide's pictures into docs/images (run: python docs/make_pictures.py).

Each picture is ``npconv.explain.animate`` (or ``receptive_field_png``) of one spec; the test
suite checks that every picture the guide shows is here and has the frames its spec implies.
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
RECEPTIVE_FIELD = ([nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3, stride=2), nn.Conv2d(1, 1, 3, dilation=2)], (1, 1, 17, 17))


def main() -> None:
    IMAGES.mkdir(exist_ok=True)
    for name, options in PICTURES.items():
        print("wrote", animate(IMAGES / f"{name}.gif", **options))
    layers, shape = RECEPTIVE_FIELD
    print("wrote", receptive_field_png(IMAGES / "receptive_field.png", layers, shape))


if __name__ == "__main__":
    main()
