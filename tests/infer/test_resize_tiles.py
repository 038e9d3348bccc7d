"""`--resize squash|pad` and `--tiles auto|N` through the one inference path (issue 21).

Geometry is tested with a model stub whose logits are a known map of its input, run through the real path
(`predict_items`, `preprocess`, `to_uint8_map`): squash stays bit-identical, pad keeps a non-square image's
object where it is, tiles=1 equals the global pass, bad options fail in one line before anything is built.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sam2sod.errors import SodError
from sam2sod.infer.forward import logits_to_uint8
from sam2sod.infer.inference import check_resize, parse_tiles, predict_items, preprocess
from sam2sod.infer.predictor import Predictor

CPU = torch.device("cpu")
S = 64


class _BrightIsSalient(torch.nn.Module):
    """Logits = 8 x the normalised input's channel mean: bright pixels salient, SAM2's mean colour (0) at 0.5."""

    image_size = S

    def forward(self, images, prompts=None, multimask=False):
        return {"logits": 8.0 * images.mean(1, keepdim=True)}


def _image(tmp_path: Path, h: int, w: int, box: tuple[int, int, int, int], name: str = "im") -> Path:
    """A dark HxW image with a white rectangle rows y0:y1, columns x0:x1."""
    arr = np.full((h, w, 3), 20, np.uint8)
    y0, y1, x0, x1 = box
    arr[y0:y1, x0:x1] = 255
    path = tmp_path / f"{name}.png"
    Image.fromarray(arr).save(path)
    return path


def _one(path: Path, **kw) -> np.ndarray:
    (_, m), = predict_items(_BrightIsSalient(), [("im", path, None)], S, CPU, batch_size=1, **kw)
    return m


def test_squash_is_bit_identical_to_the_plain_formula(tmp_path: Path) -> None:
    path = _image(tmp_path, 50, 130, (10, 40, 90, 120))
    arr = np.array(Image.open(path).convert("RGB"))
    ref = logits_to_uint8(_BrightIsSalient()(preprocess(arr, S)[None])["logits"][0], (50, 130))
    assert np.array_equal(_one(path), ref)
    assert np.array_equal(_one(path, resize="squash"), ref)


def test_pad_keeps_a_non_square_objects_place(tmp_path: Path) -> None:
    h, w, box = 40, 160, (8, 32, 112, 152)  # 4:1, the object in the right part
    m = _one(_image(tmp_path, h, w, box), resize="pad")
    assert m.shape == (h, w)
    inside = m[box[0] + 3:box[1] - 3, box[2] + 3:box[3] - 3]
    outside = np.concatenate([m[:, :box[2] - 6].ravel(), m[:box[0] - 4].ravel(), m[box[1] + 4:].ravel()])
    assert inside.min() > 200 and outside.max() < 60
    fg = np.argwhere(m > 127)
    assert abs(fg[:, 1].mean() - (box[2] + box[3] - 1) / 2) < 2 and abs(fg[:, 0].mean() - (box[0] + box[1] - 1) / 2) < 2


def test_pad_canvas_is_zero_outside_the_letterbox() -> None:
    img = np.full((20, 80, 3), 255, np.uint8)
    x = preprocess(img, S, "pad")
    assert x.shape == (3, S, S)
    assert torch.count_nonzero(x[:, :24]) == 0 and torch.count_nonzero(x[:, 40:]) == 0  # 16 rows of image, centred
    assert (x[:, 24:40] > 1).all()


def test_tiles_one_equals_the_global_pass(tmp_path: Path) -> None:
    path = _image(tmp_path, 90, 150, (20, 70, 30, 100))
    glob = _one(path)
    assert np.array_equal(_one(path, tiles=1), glob)
    small = _image(tmp_path, 90, 2 * S, (20, 70, 30, 100), "small")  # longer side <= 2 S: auto is one tile
    assert np.array_equal(_one(small, tiles="auto"), _one(small))


def test_tiles_keep_the_object_and_shape(tmp_path: Path) -> None:
    h, w, box = 300, 420, (100, 220, 150, 330)  # crosses the tile borders of a 3-tile grid
    m = _one(_image(tmp_path, h, w, box), tiles=3)
    assert m.shape == (h, w)
    assert m[box[0] + 8:box[1] - 8, box[2] + 8:box[3] - 8].min() > 180
    assert m[:box[0] - 12].max() < 90
    row = m[160].astype(int)  # no step inside the object along a row crossing the tile borders
    assert np.abs(np.diff(row[box[2] + 8:box[3] - 8])).max() <= 3


def test_predictor_batch_pad_and_tiles(tmp_path: Path) -> None:
    path = _image(tmp_path, 40, 160, (8, 32, 112, 152))
    ref = _one(path, resize="pad")
    got = Predictor(_BrightIsSalient(), S, resize="pad").predict_batch([path])[0]
    assert got.shape == (40, 160) and np.abs(np.rint(got * 255) - ref).max() <= 1
    tiled = Predictor(_BrightIsSalient(), S, tiles=1).predict_batch([path])[0]
    assert np.array_equal(np.rint(tiled * 255).astype(np.uint8), _one(path, tiles=1))


@pytest.mark.parametrize(("resize", "tiles", "oracle", "msg"), [
    ("stretch", None, None, r"--resize must be one of squash, pad, got 'stretch'"),
    ("squash", 0, None, r"--tiles must be auto or an integer in \[1, 64\], got 0"),
    ("squash", 65, None, r"--tiles must be auto or an integer"),
    ("pad", None, "box", "oracle --prompt works with --resize squash and no --tiles"),
])
def test_option_errors_are_one_line(resize, tiles, oracle, msg) -> None:
    with pytest.raises(SodError, match=msg) as err:
        check_resize(resize, tiles, oracle)
    assert "\n" not in str(err.value)


def test_parse_tiles() -> None:
    assert parse_tiles(None) is None and parse_tiles("auto") == "auto" and parse_tiles("4") == 4
    with pytest.raises(SodError, match="--tiles must be auto or an integer in \\[1, 64\\], got 'big'"):
        parse_tiles("big")
    with pytest.raises(SodError, match="--resize must be one of"):
        Predictor(_BrightIsSalient(), S, resize="crop")
