"""The guide's pictures: every one it shows exists and is what its spec draws today.
(The guide's examples themselves run as doctests: pytest collects docs/guide.md.)"""

import re
import sys
from pathlib import Path

import pytest

from helpers import require

Image = require("PIL.Image", "drawing the guide's pictures")
DOCS = Path(__file__).resolve().parent.parent / "docs"
sys.path.insert(0, str(DOCS))
import make_pictures  # noqa: E402

from npconv.explain.animation import Geometry  # noqa: E402

SHOWN = re.findall(r"\(images/([\w.]+)\)", (DOCS / "guide.md").read_text(encoding="utf-8"))


def test_the_guide_shows_a_picture_for_every_animated_spec():
    assert set(SHOWN) == ({f"{name}.gif" for name in make_pictures.PICTURES}
                          | {"receptive_field.png", "stream_state.png"})


@pytest.mark.parametrize("name", sorted(make_pictures.PICTURES))
def test_each_gif_has_the_frames_and_size_its_spec_implies(name):
    geometry = Geometry.build(**make_pictures.PICTURES[name])
    with Image.open(DOCS / "images" / f"{name}.gif") as picture:
        assert picture.n_frames == geometry.n_frames
        assert picture.size == geometry.size


def test_the_receptive_field_picture_is_current(tmp_path):
    layers, shape = make_pictures.RECEPTIVE_FIELD
    fresh = make_pictures.receptive_field_png(tmp_path / "rf.png", layers, shape)
    with Image.open(fresh) as new, Image.open(DOCS / "images" / "receptive_field.png") as kept:
        assert new.size == kept.size
        assert new.convert("RGB").tobytes() == kept.convert("RGB").tobytes()


def test_the_streaming_state_picture_is_current(tmp_path):
    fresh = make_pictures.stream_state_png(tmp_path / "state.png", **make_pictures.STREAM_STATE)
    with Image.open(fresh) as new, Image.open(DOCS / "images" / "stream_state.png") as kept:
        assert new.size == kept.size
        assert new.convert("RGB").tobytes() == kept.convert("RGB").tobytes()
