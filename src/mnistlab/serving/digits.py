"""A person's picture of a digit, turned into what an MNIST model expects.

MNIST's digits were made from scanned black-and-white NIST forms: each digit
was cropped to its bounding box, scaled (anti-aliased, so grey levels appear)
to fit a 20x20 box keeping its aspect ratio, and placed in a 28x28 field so
that its centre of mass sits at the centre, pixel (14, 14). The ink is white
(255) on black (0). `to_mnist` does the same to any picture:

1. greyscale: colour becomes luma; a transparent background is flattened onto
   white (onto black when the ink itself is light); EXIF rotation is applied;
2. polarity: the border's median says what the paper is; dark ink on light
   paper is inverted to light on dark;
3. contrast: the paper level is subtracted, faint noise below 15% of the
   ink's level is zeroed and the ink's level stretched to 255; a picture without
   ink (less than 32 grey levels of contrast, or a few specks) raises
   `MnistlabError`;
4. crop to the ink's bounding box (stray specks holding < 0.2% of the ink at
   either end are ignored);
5. strokes thinner than MNIST's (a fine pen on a big picture: under 1.5 px
   once scaled) are redrawn 2.8 px wide, MNIST's median;
6. scale with Pillow's LANCZOS filter so the longer side is 20 px, keeping
   the aspect ratio, and stretch the brightest pixel to 255;
7. shift into 28x28 so the centre of mass lands on pixel (14, 14) (as far as
   that keeps the whole digit inside).

    >>> from mnistlab.serving import digits
    >>> x = digits.to_mnist(digits.open_image("seven.jpg"))   # (28, 28) float32, 0..255
    >>> digits.predict_images(model, ["seven.jpg"])           # [{"path", "prediction", "probabilities"}]

Only NumPy and Pillow are needed here; the model is whatever Keras model the
caller loaded (see `mnistlab.evaluation.evaluate.load_best_model`).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from mnistlab.errors import MnistlabError

MAX_PIXELS = 50_000_000  # larger pictures are refused before they are decoded
MIN_SIDE = 8  # smaller pictures cannot hold a recognisable digit
WORK_SIDE = 2048  # larger pictures are reduced to this before the pixel work
BOX = 20  # the digit is scaled to fit BOX x BOX ...
SIZE = 28  # ... inside SIZE x SIZE
CENTRE = 14.0  # MNIST's centre of mass, in pixel indices (measured: 14.00 +- 0.29)
NOISE = 0.15  # share of the ink's contrast below which a pixel is paper
MIN_CONTRAST = 32.0  # grey levels between paper and ink, below which a picture is blank
MIN_STROKE = 1.5  # px at the final scale; thinner strokes are thickened (MNIST: 1st percentile ~1.9)
STROKE = 2.8  # ... to this width (MNIST's median stroke, same estimate: 2.9 px)
WORK = 5  # thickening works at WORK times the final resolution
MIN_INK = 4  # fewer ink pixels than this is a speck, not a digit
TRIM = 0.002  # share of the ink a stray speck may hold and still be cut off


def open_image(source, name: str | None = None) -> Image.Image:
    """Open a picture from a path, bytes or a binary file object, checking its size.

    Args:
        source: a path (str or Path), `bytes`, or a readable binary file object.
        name: what to call it in error messages (default: the path, or "image").

    Raises `MnistlabError` for a missing or unreadable file, something that is
    not an image, or a size outside MIN_SIDE..MAX_PIXELS.
    """
    if name is None:
        name = str(source) if isinstance(source, (str, Path)) else "image"
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(source)
    except FileNotFoundError:
        raise MnistlabError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise MnistlabError(f"{name} is a folder, not an image file") from None
    except UnidentifiedImageError:
        raise MnistlabError(
            f"{name} is not an image Pillow can read (PNG, JPEG, GIF, BMP, TIFF, WebP, ...)"
        ) from None
    except Image.DecompressionBombError:
        raise MnistlabError(f"{name} is far too large (over {MAX_PIXELS:,} pixels)") from None
    except OSError as e:
        raise MnistlabError(f"cannot read {name}: {e.strerror or e}") from None
    check_size(image.size, name)
    try:
        image.load()
    except (OSError, ValueError, SyntaxError) as e:
        raise MnistlabError(f"{name} is a damaged or truncated image ({e})") from None
    return image


def check_size(size, name: str = "image") -> None:
    """Refuse absurd sizes: a side under MIN_SIDE px, or more than MAX_PIXELS pixels."""
    w, h = size
    if w * h > MAX_PIXELS:
        raise MnistlabError(
            f"{name} is {w}x{h} pixels ({w * h / 1e6:.0f} megapixels): more than the "
            f"{MAX_PIXELS / 1e6:.0f} megapixels accepted; scale it down"
        )
    if min(w, h) < MIN_SIDE:
        raise MnistlabError(
            f"{name} is only {w}x{h} pixels: at least {MIN_SIDE}x{MIN_SIDE} are needed to hold a digit"
        )


def to_grey(image: Image.Image) -> np.ndarray:
    """Greyscale float32 pixels 0..255 (0 black), with transparency flattened.

    A transparent background is flattened onto white, unless what is opaque
    is light (white ink on a transparent background), which goes onto black.
    """
    image = ImageOps.exif_transpose(image) if image.getexif() else image
    mode = image.mode
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        grey = np.asarray(image, dtype=np.float32)
        top = float(grey.max()) if grey.size else 0.0
        if mode == "F" and top <= 1.0:
            grey = grey * 255.0
        elif top > 255:
            grey = grey * (255.0 / (65535.0 if top <= 65535 else top))
        return np.clip(grey, 0, 255).astype(np.float32)
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    if not has_alpha:
        return np.asarray(image.convert("L"), dtype=np.float32)
    rgba = image.convert("RGBA")
    alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / 255.0
    luma = np.asarray(rgba.convert("L"), dtype=np.float32)
    if alpha.min() >= 1.0:
        return luma
    # The backdrop that contrasts with what is drawn: white, unless the ink is light.
    weight = alpha.sum()
    ink_luma = (luma * alpha).sum() / weight if weight > 0 else 0.0
    backdrop = 0.0 if ink_luma > 127.5 else 255.0
    return (luma * alpha + backdrop * (1.0 - alpha)).astype(np.float32)


def _as_grey_array(image) -> np.ndarray:
    if isinstance(image, Image.Image):
        check_size(image.size)
        if max(image.size) > WORK_SIDE:
            image = image.copy()
            image.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.BOX)
        return to_grey(image)
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        mode = "RGBA" if arr.shape[-1] == 4 else "RGB"
        scale = 255.0 if arr.max() <= 1.0 else 1.0
        return _as_grey_array(Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8), mode))
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise MnistlabError(f"expected a 2-D greyscale or an RGB(A) image array, got shape {arr.shape}")
    check_size(arr.shape[::-1])
    if not np.isfinite(arr).all():
        raise MnistlabError("the image array holds NaN or infinite values")
    return arr


def ink_bbox(mask: np.ndarray, trim: float = TRIM):
    """(top, bottom, left, right), bottom/right exclusive, of the True pixels,
    ignoring up to `trim` of them at each end of each axis (stray specks)."""
    def span(profile):
        cum = np.cumsum(profile)
        total = cum[-1]
        lo = int(np.searchsorted(cum, total * trim, side="right"))
        hi = int(np.searchsorted(cum, total * (1 - trim), side="left")) + 1
        return lo, max(hi, lo + 1)

    top, bottom = span(mask.sum(axis=1))
    left, right = span(mask.sum(axis=0))
    return top, bottom, left, right


def centre_of_mass(image: np.ndarray):
    """(row, column) of the intensity-weighted centre, in pixel indices."""
    total = float(image.sum())
    if total <= 0:
        return (image.shape[0] - 1) / 2, (image.shape[1] - 1) / 2
    rows = np.arange(image.shape[0], dtype=np.float64)
    cols = np.arange(image.shape[1], dtype=np.float64)
    return float(image.sum(axis=1) @ rows / total), float(image.sum(axis=0) @ cols / total)


def stroke_width(mask: np.ndarray) -> float:
    """The mean width in pixels of the strokes in a boolean mask: 2 * area / edge pixels.

    (A stroke of width w and length L has area w*L and about 2*L edge pixels.
    Lines 1 or 2 px wide both read as 2.)
    """
    area = int(mask.sum())
    if area == 0:
        return 0.0
    m = np.pad(mask, 1)
    inner = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    return 2.0 * area / max(area - int(inner.sum()), 1)


def thicken_strokes(mask: np.ndarray, width: float) -> np.ndarray:
    """Redraw thin strokes (a boolean mask, `width` px wide) as wide as MNIST's.

    Works at WORK times the final resolution: the mask is resampled so its
    longer side is BOX * WORK px (any covered pixel counts as ink), then
    dilated to STROKE * WORK px. Returns float32 0/255, padded to hold the
    dilation.
    """
    h, w = mask.shape
    side = BOX * WORK
    f = side / max(h, w)
    size = (max(1, round(w * f)), max(1, round(h * f)))
    image = Image.fromarray(mask.astype(np.uint8) * 255, mode="L")
    if f < 1:
        image = image.resize(size, Image.Resampling.BOX).point(lambda v: 255 if v > 0 else 0)
    else:
        image = image.resize(size, Image.Resampling.NEAREST)
    grow = max(0, round(STROKE * WORK - max(1.0, width * f)))
    k = grow // 2 * 2 + 1
    if k > 1:
        image = ImageOps.expand(image, border=k // 2, fill=0).filter(ImageFilter.MaxFilter(k))
    return np.asarray(image, dtype=np.float32)


def to_mnist(image, name: str = "image", thicken: bool = True) -> np.ndarray:
    """A picture of one digit as MNIST would have it: (28, 28) float32, white ink on black, 0..255.

    Args:
        image: a PIL image (any mode, size, colour or polarity), or a NumPy
            array: 2-D greyscale 0..255, or (H, W, 3|4) RGB(A).
        name: what to call it in error messages.
        thicken: redraw strokes thinner than MNIST's (a fine pen on a big
            picture) at MNIST's stroke width.

    See the module docstring for the steps. Raises `MnistlabError` for a
    blank picture or an absurd size.
    """
    try:
        grey = _as_grey_array(image)
    except MnistlabError as e:
        raise MnistlabError(f"{name}: {e}" if name != "image" else str(e)) from None
    h, w = grey.shape
    ring = max(1, min(h, w) // 50)
    border = np.concatenate([grey[:ring].ravel(), grey[-ring:].ravel(),
                             grey[:, :ring].ravel(), grey[:, -ring:].ravel()])
    paper = float(np.median(border))
    if paper > 127.5:  # dark ink on light paper: make it light on dark, like MNIST
        grey = 255.0 - grey
        paper = 255.0 - paper
    ink = grey - paper
    strongest = float(ink.max())
    # The ink's level: the median of the pixels at least half as bright as the brightest.
    contrast = float(np.median(ink[ink >= 0.5 * strongest])) if strongest > 0 else 0.0
    if contrast < MIN_CONTRAST:
        raise MnistlabError(
            f"{name} looks blank: no ink stands out from the background "
            f"(contrast {max(contrast, 0):.0f} of 255 grey levels)"
        )
    inked = int((ink >= 0.5 * contrast).sum())
    if inked < MIN_INK:
        raise MnistlabError(f"{name} looks blank: only {inked} pixel(s) of ink, too few for a digit")
    floor = NOISE * contrast
    ink = np.where(ink < floor, 0.0, np.minimum(ink * (255.0 / contrast), 255.0))
    top, bottom, left, right = ink_bbox(ink > 0)
    crop = ink[top:bottom, left:right]
    if thicken:
        width = stroke_width(crop >= 127.5)
        if width * BOX / max(crop.shape) < MIN_STROKE:
            crop = thicken_strokes(crop > 0, width)
    ch, cw = crop.shape
    scale = BOX / max(ch, cw)
    size = (max(1, round(cw * scale)), max(1, round(ch * scale)))
    small = Image.fromarray(crop.astype(np.float32), mode="F").resize(size, Image.Resampling.LANCZOS)
    small = np.clip(np.asarray(small, dtype=np.float32), 0.0, 255.0)
    peak = float(small.max())
    if peak <= 0:
        raise MnistlabError(f"{name} looks blank: nothing is left after scaling the ink down")
    small *= 255.0 / peak
    return place_by_centre_of_mass(small)


def place_by_centre_of_mass(digit: np.ndarray, size: int = SIZE, centre: float = CENTRE) -> np.ndarray:
    """Put `digit` (at most size x size) into a size x size field, shifted by whole
    pixels so its centre of mass lands on (centre, centre), as far as that keeps
    it all inside."""
    dh, dw = digit.shape
    cy, cx = centre_of_mass(digit)
    top = int(np.clip(round(centre - cy), 0, size - dh))
    left = int(np.clip(round(centre - cx), 0, size - dw))
    out = np.zeros((size, size), dtype=np.float32)
    out[top:top + dh, left:left + dw] = digit
    return out


def load_digit(source, name: str | None = None) -> np.ndarray:
    """`to_mnist(open_image(source))`: a path, bytes or file object to a (28, 28) array."""
    if name is None:
        name = str(source) if isinstance(source, (str, Path)) else "image"
    return to_mnist(open_image(source, name), name=name)


def load_digits(paths) -> np.ndarray:
    """(N, 28, 28) float32 for N image paths; one `MnistlabError` naming every bad file."""
    arrays, problems = [], []
    for path in paths:
        try:
            arrays.append(load_digit(path))
        except MnistlabError as e:
            problems.append(str(e))
    if problems:
        lead = f"{len(problems)} of {len(paths)} images cannot be used: " if len(paths) > 1 else ""
        raise MnistlabError(lead + "; ".join(problems))
    return np.stack(arrays)


def predict_arrays(model, images: np.ndarray) -> np.ndarray:
    """The model's class probabilities (N, 10) float64 for (N, 28, 28) MNIST-form images."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 2:
        images = images[None]
    probs = np.asarray(model.predict_on_batch(images), dtype=np.float64)
    return probs.reshape(len(images), -1)


def prediction_record(path, probs) -> dict:
    """The JSON object for one image: {"path", "prediction", "probabilities"}."""
    probs = [round(float(p), 6) for p in probs]
    return {"path": str(path), "prediction": int(np.argmax(probs)), "probabilities": probs}


def predict_images(model, paths) -> list[dict]:
    """Preprocess each image file with `to_mnist` and predict it.

    Args:
        model: a Keras model taking (N, 28, 28) raw pixels, giving softmax probabilities.
        paths: image file paths.

    Returns one `prediction_record` per path, in order. Every bad file is
    named in a single `MnistlabError` before the model runs.
    """
    paths = list(paths)
    images = load_digits(paths)
    probs = predict_arrays(model, images)
    return [prediction_record(p, row) for p, row in zip(paths, probs)]


def top_k(probs, k: int = 3, class_names=None) -> list[tuple]:
    """The k most probable (class index, name, probability), best first."""
    probs = np.asarray(probs, dtype=np.float64)
    names = class_names or [str(i) for i in range(len(probs))]
    order = np.argsort(-probs, kind="stable")[:k]
    return [(int(i), names[i], float(probs[i])) for i in order]


def png_bytes(digit: np.ndarray, scale: int = 1) -> bytes:
    """A (28, 28) 0..255 array as PNG bytes (optionally enlarged `scale` times, nearest)."""
    image = Image.fromarray(np.clip(np.rint(digit), 0, 255).astype(np.uint8), mode="L")
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
