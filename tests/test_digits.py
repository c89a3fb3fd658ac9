"""mnistlab.serving.digits: a person's picture made into MNIST form, and `mnistlab predict`.

The preprocessing tests need no model. The prediction tests use a small MLP
trained on real MNIST (see digit_images.py) and pictures drawn here: digits
in a TrueType font and as pen strokes, in many sizes, colours, polarities,
modes and formats.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from digit_images import (BOLD, font_digit, pen_digit, require_data_dir, save, trained_model,
                          trained_run)
from mnistlab.serving import digits
from mnistlab.errors import MnistlabError


def com(x):
    return digits.centre_of_mass(np.asarray(x, dtype=np.float64))


def ink_box(x, level=20):
    rows = np.flatnonzero((x > level).any(axis=1))
    cols = np.flatnonzero((x > level).any(axis=0))
    return rows[0], rows[-1] + 1, cols[0], cols[-1] + 1


def close(a, b, mean_tol=6.0):
    """Same picture after preprocessing: mean absolute difference (0..255) under `mean_tol`."""
    diff = float(np.abs(np.asarray(a, float) - np.asarray(b, float)).mean())
    assert diff < mean_tol, f"mean abs difference {diff:.2f} >= {mean_tol}"


# ------------------------------------------------------------------ preprocessing, no model


def test_output_is_mnist_shaped_light_on_dark():
    x = digits.to_mnist(pen_digit(0))
    assert x.shape == (28, 28) and x.dtype == np.float32
    assert x.min() == 0 and x.max() == pytest.approx(255, abs=0.5)
    border = np.concatenate([x[:3].ravel(), x[-3:].ravel(), x[:, :3].ravel(), x[:, -3:].ravel()])
    assert border.max() == 0, "a 0 sits in the middle: the border stays black"
    assert 40 < (x > 127).sum() < 250, "a digit's worth of ink"


@pytest.mark.parametrize("digit", [0, 1, 4, 7])
def test_dark_ink_on_light_paper_is_inverted(digit):
    light_on_dark = digits.to_mnist(font_digit(digit, dark_on_light=False))
    dark_on_light = digits.to_mnist(font_digit(digit, dark_on_light=True))
    close(light_on_dark, dark_on_light, 1.0)


def test_polarity_comes_from_the_paper_not_the_ink_share():
    # A bold bar covering much of the picture: still ink, whichever way round.
    a = np.full((100, 100), 255, dtype=np.uint8)
    a[10:90, 35:65] = 0
    for picture in (a, 255 - a):
        x = digits.to_mnist(picture)
        assert x[14, 14] > 200 and x[14, 2] == 0


@pytest.mark.parametrize("digit,offset,margin,size", [
    (7, (0.0, 0.0), 0.2, (200, 200)),
    (2, (-0.3, -0.2), 0.3, (400, 300)),
    (4, (0.35, 0.3), 0.35, (300, 500)),
    (9, (0.1, -0.25), 0.1, (60, 90)),
    (0, (0.0, 0.0), 0.05, (120, 40)),
])
def test_centre_of_mass_lands_within_one_pixel_of_14_14(digit, offset, margin, size):
    x = digits.to_mnist(font_digit(digit, size=size, margin=margin, offset=offset))
    cy, cx = com(x)
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1, (cy, cx)


@pytest.mark.parametrize("w,h", [(300, 100), (90, 360), (50, 50), (12, 9), (2400, 800)])
def test_fits_20x20_keeping_aspect_ratio(w, h):
    picture = np.full((h + 80, w + 60), 240, dtype=np.uint8)  # grey paper
    picture[40:40 + h, 30:30 + w] = 20  # a dark block w wide, h high
    x = digits.to_mnist(picture, thicken=False)
    top, bottom, left, right = ink_box(x, level=60)
    bw, bh = right - left, bottom - top
    assert max(bw, bh) == 20
    assert bw / bh == pytest.approx(w / h, rel=0.2, abs=0.1)


def test_small_digits_are_scaled_up_and_large_ones_down():
    tiny = digits.to_mnist(font_digit(5, size=(14, 14), margin=0.0))  # 14 px scaled up to 20
    small = digits.to_mnist(font_digit(5, size=(40, 40), margin=0.05))
    large = digits.to_mnist(font_digit(5, size=(1600, 1200), margin=0.3))
    for x in (tiny, small, large):
        top, bottom, left, right = ink_box(x, level=60)
        assert max(bottom - top, right - left) == 20
    corr = lambda a, b: np.corrcoef(a.ravel(), b.ravel())[0, 1]  # noqa: E731
    assert corr(small, large) > 0.9
    assert corr(tiny, large) > 0.5  # a 14-px rendering is crude, but the same digit


def test_alpha_is_flattened_whichever_colour_the_ink_is():
    reference = digits.to_mnist(pen_digit(3))
    dark_ink = pen_digit(3, mode="RGBA")  # black ink on transparent paper
    light_ink = pen_digit(3, mode="RGBA", dark_on_light=False)  # white ink on transparent
    assert dark_ink.getpixel((0, 0))[3] == 0
    close(digits.to_mnist(dark_ink), reference, 1.0)
    close(digits.to_mnist(light_ink), reference, 1.0)


def test_colour_jpeg_and_16_bit_pictures(tmp_path):
    reference = digits.to_mnist(font_digit(8))
    coloured = font_digit(8, mode="RGB", ink=(30, 40, 150), paper=(250, 235, 190))
    jpeg = digits.load_digit(save(coloured, tmp_path / "eight.jpg", quality=75))
    close(jpeg, reference, 4.0)
    sixteen = Image.fromarray(np.asarray(font_digit(8), dtype=np.uint16) * 257)
    close(digits.to_mnist(sixteen), reference, 1.0)
    palette = font_digit(8).convert("P")
    close(digits.load_digit(save(palette, tmp_path / "eight.gif")), reference, 1.0)


def test_exif_rotation_is_applied(tmp_path):
    upright = pen_digit(7, size=(200, 300))
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "phone.jpg"
    stored.convert("RGB").save(path, exif=exif, quality=95)
    close(digits.load_digit(path), digits.to_mnist(upright), 4.0)


def test_specks_and_paper_noise_are_ignored():
    clean = pen_digit(2, size=(400, 400))
    rng = np.random.default_rng(0)
    noisy = np.asarray(clean, dtype=np.float64) - rng.uniform(0, 30, (400, 400))  # grainy paper
    noisy[5:8, 390:393] = 0  # a fly speck in the corner
    noisy = np.clip(noisy, 0, 255).astype(np.uint8)
    close(digits.to_mnist(noisy), digits.to_mnist(clean), 4.0)


def test_thin_strokes_are_drawn_as_thick_as_mnist():
    fine = pen_digit(5, size=(900, 900), width=2)
    thick = digits.to_mnist(pen_digit(5, size=(900, 900)))
    x = digits.to_mnist(fine)
    assert digits.stroke_width(x >= 128) >= 2.0
    close(x, thick, 12.0)
    faint = digits.to_mnist(fine, thicken=False)
    assert (faint >= 128).sum() < 0.6 * (x >= 128).sum()  # what it would be without


def test_mnist_digits_come_through_almost_unchanged():
    from digit_images import dataset

    require_data_dir()
    x = dataset().x_test[:300]
    out = np.stack([digits.to_mnist(a) for a in x])
    per_image = np.abs(out - x).mean(axis=(1, 2))
    assert np.median(per_image) < 1.0 and per_image.mean() < 2.5


def test_arrays_are_accepted():
    grey = np.asarray(pen_digit(6), dtype=np.float64) / 255.0  # 0..1 floats
    rgb = np.asarray(pen_digit(6, mode="RGB"))
    close(digits.to_mnist(np.asarray(pen_digit(6))), digits.to_mnist(rgb), 0.5)
    assert digits.to_mnist(grey * 255).shape == (28, 28)
    with pytest.raises(MnistlabError, match="shape"):
        digits.to_mnist(np.zeros((4, 30, 30)))


def _bad_files(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("these are not pixels")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    white = save(Image.new("L", (200, 200), 255), tmp_path / "white.png")
    black = save(Image.new("RGB", (200, 200), (0, 0, 0)), tmp_path / "black.jpg")
    grey = save(Image.new("L", (64, 64), 128), tmp_path / "grey.png")
    faint = np.full((100, 100), 200, np.uint8)
    faint[30:70, 45:55] = 190  # 10 grey levels: not ink
    faint = save(Image.fromarray(faint), tmp_path / "faint.png")
    tiny = save(pen_digit(1, size=(6, 40)), tmp_path / "tiny.png")
    huge = save(Image.new("1", (8000, 6500), 1), tmp_path / "huge.png")  # 52 megapixels
    buf = io.BytesIO()
    pen_digit(3).save(buf, "PNG")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    folder = tmp_path / "folder.png"
    folder.mkdir()
    return {
        text: "not an image", empty: "not an image", white: "blank", black: "blank",
        grey: "blank", faint: "blank", tiny: "only 6x40 pixels", huge: "megapixels",
        truncated: "damaged or truncated", folder: "folder", tmp_path / "missing.png": "no such file",
    }


def test_bad_pictures_raise_clear_errors(tmp_path):
    for path, why in _bad_files(tmp_path).items():
        with pytest.raises(MnistlabError) as e:
            digits.load_digit(path)
        assert str(path) in str(e.value) and why in str(e.value), str(e.value)


def test_bad_pictures_are_all_named_at_once(tmp_path):
    good = save(pen_digit(1), tmp_path / "one.png")
    bad = list(_bad_files(tmp_path))[:3]
    with pytest.raises(MnistlabError, match="3 of 4 images cannot be used") as e:
        digits.load_digits([good, *bad])
    assert all(str(p) in str(e.value) for p in bad)


# ------------------------------------------------------------------ predictions by a trained model


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return trained_model(tmp_path_factory)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return trained_run(tmp_path_factory)


VARIANTS = {  # name -> (renderer keyword arguments, file suffix)
    "L png": ({}, ".png"),
    "white on black": ({"dark_on_light": False}, ".png"),
    "tiny 24px": ({"size": (24, 24), "margin": 0.1}, ".png"),
    "wide 600x300": ({"size": (600, 300)}, ".png"),
    "big with margins": ({"size": (1000, 1400), "margin": 0.35}, ".png"),
    "RGBA transparent": ({"mode": "RGBA"}, ".png"),
    "RGB blue on cream jpeg": ({"mode": "RGB", "ink": (20, 20, 160), "paper": (250, 240, 200)}, ".jpg"),
    "grey pencil on grey jpeg": ({"ink": 90, "paper": 200}, ".jpg"),
}


def _predict_variants(model, tmp_path, render):
    preds = {}
    for name, (kwargs, suffix) in VARIANTS.items():
        paths = [save(render(d, **kwargs), tmp_path / f"{name.replace(' ', '_')}-{d}{suffix}") for d in range(10)]
        preds[name] = np.array([r["prediction"] for r in digits.predict_images(model, paths)])
    return preds


def test_pen_digits_are_recognised_in_every_rendering(model, tmp_path):
    preds = _predict_variants(model, tmp_path, pen_digit)
    for name, p in preds.items():
        assert (p == np.arange(10)).sum() >= 9, f"{name}: predicted {p.tolist()}"


def test_font_digits_are_recognised_and_rendering_does_not_matter(model, tmp_path):
    # DejaVu's 1 (flag and foot), 6 and 9 are far from handwriting; most others must be
    # right, and every rendering must mostly give the answers of the plain one.
    preds = _predict_variants(model, tmp_path, font_digit)
    reference = preds["L png"]
    for name, p in preds.items():
        assert (p == np.arange(10)).sum() >= 7, f"{name}: predicted {p.tolist()}"
        assert (p == reference).sum() >= 8, f"{name}: {p.tolist()} against {reference.tolist()}"
    bold = np.array([r["prediction"] for r in digits.predict_images(
        model, [save(font_digit(d, font=BOLD), tmp_path / f"bold-{d}.png") for d in range(10)])])
    assert (bold == np.arange(10)).sum() >= 6, bold.tolist()


def test_mnist_digits_as_photos_keep_their_predictions(model):
    from digit_images import dataset

    ds = dataset()
    x, y = ds.x_test[:300], ds.y_test[:300]
    direct = digits.predict_arrays(model, x).argmax(axis=1)
    pictures = []
    for a in x:  # black ink on white, 8x larger, JPEG-compressed
        picture = Image.fromarray(255 - a).resize((224, 224), Image.Resampling.BICUBIC)
        buf = io.BytesIO()
        picture.save(buf, "JPEG", quality=80)
        pictures.append(digits.load_digit(buf.getvalue()))
    again = digits.predict_arrays(model, np.stack(pictures)).argmax(axis=1)
    assert (again == direct).mean() >= 0.95
    assert (again == y).mean() >= (direct == y).mean() - 0.02


def test_skipping_the_preprocessing_would_fail(model):
    # The control: naive resizing of dark-on-light pictures is what these tests rule out.
    naive = np.stack([np.asarray(pen_digit(d).resize((28, 28)), dtype=np.float32) for d in range(10)])
    wrong = (digits.predict_arrays(model, naive).argmax(axis=1) != np.arange(10)).sum()
    assert wrong >= 6


def test_predict_records_match_the_contract(model, tmp_path):
    paths = [save(pen_digit(d), tmp_path / f"d{d}.png") for d in (3, 8)]
    records = digits.predict_images(model, paths)
    assert [r["path"] for r in records] == [str(p) for p in paths]
    for r, digit in zip(records, (3, 8)):
        assert set(r) == {"path", "prediction", "probabilities"}
        assert len(r["probabilities"]) == 10 and sum(r["probabilities"]) == pytest.approx(1, abs=1e-4)
        assert r["prediction"] == digit == int(np.argmax(r["probabilities"]))


# ------------------------------------------------------------------ the CLI


def _cli(*args, timeout=180):
    import keras

    env = {**os.environ, "KERAS_BACKEND": keras.backend.backend()}
    return subprocess.run([sys.executable, "-m", "mnistlab", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=timeout)


def test_cli_predict_json_in_a_subprocess(run_dir, model, tmp_path):
    paths = [save(pen_digit(4, size=(300, 500), mode="RGB"), tmp_path / "four.jpg"),
             save(pen_digit(6, dark_on_light=False), tmp_path / "six.png"),
             save(pen_digit(7, mode="RGBA"), tmp_path / "seven.png")]
    done = _cli("predict", run_dir, *paths, "--json")
    assert done.returncode == 0, done.stderr
    records = json.loads(done.stdout)
    assert [r["path"] for r in records] == [str(p) for p in paths]
    assert [r["prediction"] for r in records] == [4, 6, 7]
    expected = digits.predict_images(model, paths)
    for r, e in zip(records, expected):
        assert np.allclose(r["probabilities"], e["probabilities"], atol=1e-4)


def test_cli_predict_text(run_dir, tmp_path, capsys):
    from mnistlab.cli.main import main

    path = save(pen_digit(0), tmp_path / "zero.png")
    assert main(["predict", str(run_dir), str(path)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(str(path)) and line.split()[1] == "0" and line.count("%") == 3


def test_cli_predict_bad_input_exits_2(run_dir, tmp_path):
    bad = _bad_files(tmp_path)
    good = save(pen_digit(1), tmp_path / "one.png")
    done = _cli("predict", run_dir, good, *bad)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("mnistlab predict: error:") and "Traceback" not in done.stderr
    for path in bad:
        assert str(path) in done.stderr
    assert str(good) not in done.stderr
    for args in ([tmp_path / "no-run", good], [tmp_path, good]):  # no run folder; no best.keras
        done = _cli("predict", *args)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert str(args[0]) in done.stderr
