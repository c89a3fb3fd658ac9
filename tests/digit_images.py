"""Shared by the issue-7 tests: digit pictures drawn here, and one small trained run.

Pictures: digits rendered with a DejaVu TrueType font and digits drawn as pen
strokes with PIL's ImageDraw, in any size, polarity, colour and margin.

The trained run: a small MLP trained once per test process on a subset of
real MNIST, found through MNISTLAB_DATA_DIR (the source of truth) or, failing
that, ../shared/data/mnist beside the repository. Without either, the tests
that need it are skipped and say why.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parents[1]
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONT = FONT_DIR / "DejaVuSans.ttf"
BOLD = FONT_DIR / "DejaVuSans-Bold.ttf"

# Pen strokes per digit, in unit coordinates (x right, y down), each a polyline.
_ARC = lambda cx, cy, rx, ry, a0, a1, n=24: [  # noqa: E731
    (cx + rx * np.cos(t), cy + ry * np.sin(t)) for t in np.linspace(np.radians(a0), np.radians(a1), n)
]
STROKES = {
    0: [_ARC(0.5, 0.5, 0.28, 0.4, 0, 360, 40)],
    1: [[(0.42, 0.22), (0.55, 0.1), (0.55, 0.9)]],
    2: [_ARC(0.5, 0.33, 0.25, 0.23, 200, 380) + [(0.25, 0.9), (0.78, 0.9)]],
    3: [_ARC(0.5, 0.3, 0.22, 0.2, 210, 450) + _ARC(0.5, 0.7, 0.25, 0.2, 270, 510)],
    4: [[(0.6, 0.9), (0.6, 0.1), (0.22, 0.62), (0.8, 0.62)]],
    5: [[(0.75, 0.1), (0.32, 0.1), (0.28, 0.45)] + _ARC(0.5, 0.65, 0.26, 0.25, 230, 500)],
    6: [[(0.68, 0.1), (0.32, 0.55)] + _ARC(0.5, 0.68, 0.22, 0.22, 180, 540)],
    7: [[(0.22, 0.1), (0.78, 0.1), (0.4, 0.9)]],
    8: [_ARC(0.5, 0.3, 0.2, 0.2, 90, 450), _ARC(0.5, 0.7, 0.24, 0.2, -90, 270)],
    9: [_ARC(0.48, 0.32, 0.22, 0.22, 0, 360) + [(0.7, 0.32), (0.66, 0.9)]],
}


def font_digit(digit, size=(200, 200), margin=0.2, dark_on_light=True, mode="L",
               ink=None, paper=None, font=FONT, offset=(0.0, 0.0)) -> Image.Image:
    """`digit` rendered with a TrueType font, its height (1 - 2 * margin) of the picture's.

    Args:
        size: (width, height) of the picture.
        margin: share of the height left empty above and below.
        dark_on_light: black ink on white paper (else white on black).
        mode: "L", "RGB" or "RGBA" (RGBA: the paper is transparent).
        ink, paper: colours (a grey level or an RGB tuple) instead of black/white.
        offset: shift of the digit, as a share of the width and height.
    """
    w, h = size
    ink = ink if ink is not None else (0 if dark_on_light else 255)
    paper = paper if paper is not None else (255 if dark_on_light else 0)
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    target = h * (1 - 2 * margin)
    f = ImageFont.truetype(str(font), size=int(target))
    l, t, r, b = draw.textbbox((0, 0), str(digit), font=f)
    f = ImageFont.truetype(str(font), size=max(4, int(target * target / (b - t))))
    l, t, r, b = draw.textbbox((0, 0), str(digit), font=f)
    x = (w - (r - l)) / 2 - l + offset[0] * w
    y = (h - (b - t)) / 2 - t + offset[1] * h
    draw.text((x, y), str(digit), fill=255, font=f)
    return _compose(mask, ink, paper, mode)


def pen_digit(digit, size=(200, 200), width=None, margin=0.1, dark_on_light=True, mode="L",
              ink=None, paper=None) -> Image.Image:
    """`digit` drawn as pen strokes (see STROKES) with line `width` (default: 11% of the digit's height)."""
    w, h = size
    side = min(w, h) * (1 - 2 * margin)
    x0, y0 = (w - side) / 2, (h - side) / 2
    width = width or max(1, round(0.11 * side))
    ink = ink if ink is not None else (0 if dark_on_light else 255)
    paper = paper if paper is not None else (255 if dark_on_light else 0)
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    for stroke in STROKES[digit]:
        pts = [(x0 + u * side, y0 + v * side) for u, v in stroke]
        draw.line(pts, fill=255, width=width, joint="curve")
        r = width / 2
        for px, py in (pts[0], pts[-1]):
            draw.ellipse((px - r, py - r, px + r, py + r), fill=255)
    return _compose(mask, ink, paper, mode)


def _rgb(c):
    return (c, c, c) if isinstance(c, (int, float)) else tuple(c)


def _compose(mask, ink, paper, mode):
    if mode == "RGBA":
        out = Image.new("RGBA", mask.size, (*_rgb(paper), 0))
        out.paste(Image.new("RGBA", mask.size, (*_rgb(ink), 255)), (0, 0), mask)
        return out
    if mode == "L" and isinstance(ink, (int, float)) and isinstance(paper, (int, float)):
        return Image.composite(Image.new("L", mask.size, ink), Image.new("L", mask.size, paper), mask)
    out = Image.composite(Image.new("RGB", mask.size, _rgb(ink)), Image.new("RGB", mask.size, _rgb(paper)), mask)
    return out if mode == "RGB" else out.convert(mode)


def save(image: Image.Image, path, **kwargs) -> Path:
    """Save `image` (format from the suffix; JPEG gets RGB/L) and return the path."""
    path = Path(path)
    if path.suffix.lower() in (".jpg", ".jpeg") and image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    image.save(path, **kwargs)
    return path


# ------------------------------------------------------------------ the run

# Read at import, before any fixture (conftest's autouse one) takes it out of the environment.
_DATA_DIR_ENV = os.environ.get("MNISTLAB_DATA_DIR")


def data_dir() -> Path | None:
    """MNISTLAB_DATA_DIR when set (even if wrong: then the tests fail loudly), else ../shared/data/mnist."""
    if _DATA_DIR_ENV:
        return Path(_DATA_DIR_ENV)
    fallback = REPO.parent / "shared" / "data" / "mnist"
    return fallback if fallback.is_dir() else None


def require_data_dir() -> Path:
    folder = data_dir()
    if folder is None:
        pytest.skip("real MNIST not found: set MNISTLAB_DATA_DIR to the folder of the four IDX files")
    return folder


_CACHE: dict = {}

TRAIN_LIMIT = 12000
EPOCHS = 3
# One hidden layer, no batch norm or dropout: quick to compile and train, ~95% on the test set.
MODEL_OPTIONS = dict(depth=1, width=256, batch_norm=False, dropout=0.0)


def dataset():
    """Real MNIST, loaded once per process."""
    if "dataset" not in _CACHE:
        from mnistlab import data
        _CACHE["dataset"] = data.load("mnist", data_dir=require_data_dir())
    return _CACHE["dataset"]


def trained_run(tmp_path_factory) -> Path:
    """A run folder with a small MLP trained on a real-MNIST subset (once per process)."""
    if "run" not in _CACHE:
        from mnistlab.config import make_config
        from mnistlab.training.train import train

        ds = dataset()
        run_dir = tmp_path_factory.mktemp("issue7") / "run"
        config = make_config("mlp", epochs=EPOCHS, train_limit=TRAIN_LIMIT, patience=EPOCHS,
                             model_options=MODEL_OPTIONS)
        result = train(config, run_dir, dataset=ds, verbose=0)
        _CACHE["run"] = run_dir
        _CACHE["model"] = result.model
    return _CACHE["run"]


def trained_model(tmp_path_factory):
    trained_run(tmp_path_factory)
    return _CACHE["model"]
