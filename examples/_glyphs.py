"""Font glyphs as an Omniglot-like set of character classes, drawn in the format of the
8x8 digits: for 08_few_shot_digits.py, which meta-trains on them.

The digits (UCI optdigits, as bundled with scikit-learn) are 32x32 binary bitmaps of
handwriting, size-normalised and centred, reduced to 8x8 by counting the ink in each 4x4
block (0..16). Here every character class is one Unicode letter or symbol (Latin, Greek,
Cyrillic, Armenian, Georgian, Hebrew, IPA, arrows, math, misc. symbols; never a digit),
drawn with the fonts matplotlib ships (DejaVu Sans/Serif/Mono, STIX, Computer Modern:
regular, bold, italic), then bent into "handwriting" by a random affine map, a smooth
elastic displacement and a thicker or thinner pen, and reduced exactly as the digits were.
Everything is rendered in memory in a few seconds; nothing is downloaded or cached.
"""
import os
import unicodedata

import numpy as np

# Scripts and symbol blocks to draw from (code-point ranges, inclusive).
RANGES = [(0x41, 0x5A), (0x61, 0x7A), (0xC0, 0x24F), (0x250, 0x2AF), (0x370, 0x3FF),
          (0x400, 0x4FF), (0x531, 0x556), (0x561, 0x587), (0x5D0, 0x5EA), (0x10A0, 0x10FF),
          (0x2190, 0x21FF), (0x2200, 0x22FF), (0x2300, 0x23FF), (0x25A0, 0x25FF), (0x2600, 0x26FF)]
FONTS = ["DejaVuSans", "DejaVuSans-Bold", "DejaVuSans-Oblique", "DejaVuSans-BoldOblique",
         "DejaVuSerif", "DejaVuSerif-Bold", "DejaVuSerif-Italic", "DejaVuSerif-BoldItalic",
         "DejaVuSansMono", "DejaVuSansMono-Bold", "DejaVuSansMono-Oblique",
         "DejaVuSansMono-BoldOblique", "STIXGeneral", "STIXGeneralBol", "STIXGeneralItalic",
         "STIXGeneralBolIta", "cmr10", "cmss10", "cmtt10", "cmti10", "cmb10"]
CANVAS = 64  # master glyphs: CANVAS x CANVAS, the glyph's longer side SIZE pixels
SIZE = 44


def _fonts():
    import matplotlib
    from matplotlib.ft2font import FT2Font
    folder = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")
    paths = [os.path.join(folder, f + ".ttf") for f in FONTS]
    return [FT2Font(p) for p in paths if os.path.exists(p)]


def _resize(img, h, w):
    """Bilinear resize of a 2-D array to (h, w)."""
    def axis(n_out, n_in):
        t = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        i0 = np.minimum(t.astype(int), n_in - 2) if n_in > 1 else np.zeros(n_out, int)
        m = np.zeros((n_out, n_in))
        m[np.arange(n_out), i0] = 1 - (t - i0)
        if n_in > 1:
            m[np.arange(n_out), i0 + 1] += t - i0
        return m
    return axis(h, img.shape[0]) @ img @ axis(w, img.shape[1]).T


def _draw(font, ch):
    """The glyph cropped to its ink, scaled so its longer side is SIZE pixels and centred:
    the size normalisation the digits went through."""
    font.set_size(SIZE, 72)
    font.set_text(ch, 0.0)
    font.draw_glyphs_to_bitmap(antialiased=True)
    img = np.asarray(font.get_image(), dtype=np.float64) / 255.0
    if img.size == 0 or img.max() < 0.5:
        return None
    rows, cols = np.flatnonzero(img.max(1) > 0.3), np.flatnonzero(img.max(0) > 0.3)
    img = img[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    if min(img.shape) < 2:
        return None
    s = SIZE / max(img.shape)
    h, w = max(1, round(img.shape[0] * s)), max(1, round(img.shape[1] * s))
    out = np.zeros((CANVAS, CANVAS))
    r0, c0 = (CANVAS - h) // 2, (CANVAS - w) // 2
    out[r0:r0 + h, c0:c0 + w] = _resize(img, h, w)
    return out


def glyph_classes(max_classes=None, min_fonts=3, min_aspect=0.8, max_ink=0.16, distinct=0.02):
    """{character: [one master image per font that draws it]}.

    Kept: letters and symbols (no digits, no number signs at all) that at least
    ``min_fonts`` fonts draw; upright (height >= min_aspect * width) and not filled
    (ink fraction <= max_ink), since digits are upright pen strokes; and not a lookalike
    of a kept class (Latin A, Greek Alpha and Cyrillic A are one shape: mean 12x12 block
    difference below ``distinct``), so that no two classes need telling apart by font."""
    fonts = _fonts()
    classes, thumbs = {}, []
    for lo, hi in RANGES:
        for cp in range(lo, hi + 1):
            ch = chr(cp)
            if unicodedata.category(ch)[0] not in "LS" or ch.isnumeric():
                continue
            imgs = [m for f in fonts if f.get_char_index(cp)
                    for m in [_draw(f, ch)] if m is not None]
            if len(imgs) < min_fonts:
                continue
            ink = imgs[0] > 0.5
            rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
            if rows[-1] - rows[0] + 1 < min_aspect * (cols[-1] - cols[0] + 1) or ink.mean() > max_ink:
                continue
            thumb = ink.reshape(CANVAS // 8, 8, CANVAS // 8, 8).mean((1, 3))
            if thumbs and np.abs(np.array(thumbs) - thumb).mean((1, 2)).min() < distinct:
                continue
            thumbs.append(thumb)
            classes[ch] = imgs
            if max_classes and len(classes) >= max_classes:
                return classes
    return classes


def render(classes, n_per_class, rng, rotate=0.15, shear=0.2, scale=(0.8, 1.05), aspect=0.15,
           shift=1.5, elastic=1.5, pen=(0.45, 0.15, 0.4)):
    """``n_per_class`` random handwriting-like drawings of each class -> (X (n, 64) in
    [0, 1] as load_digits, y (n,) labels 0..len(classes)-1).

    Each drawing: a random font, then (output pixel -> master pixel) a random rotation
    (radians, sd ``rotate``), shear, scale, aspect ratio and shift (pixels), a smooth
    elastic displacement (sd ``elastic`` pixels at 3x3 control points: wobbly strokes),
    a 32x32 binary bitmap, a pen that is (probabilities ``pen``) as drawn, one pixel
    thicker or one pixel thinner, and 4x4 block ink counts / 16."""
    rng = np.random.default_rng(rng)
    masters = [m for imgs in classes.values() for m in imgs]
    owner = np.repeat(np.arange(len(classes)), [len(imgs) for imgs in classes.values()])
    stack = np.array(masters) > 0.5
    first, count = np.searchsorted(owner, np.arange(len(classes))), np.bincount(owner)
    y = np.repeat(np.arange(len(classes)), n_per_class)
    n = len(y)
    which = first[y] + (rng.random(n) * count[y]).astype(int)

    a, sh = rng.normal(0, rotate, n), rng.normal(0, shear, n)
    asp, s = np.exp(rng.normal(0, aspect, n)), rng.uniform(*scale, n) * 32 / SIZE
    rot = np.stack([np.stack([np.cos(a), -np.sin(a)], -1), np.stack([np.sin(a), np.cos(a)], -1)], 1)
    forward = s[:, None, None] * rot @ (np.eye(2) * np.stack([asp, 1 / asp], -1)[:, None]) \
        @ (np.eye(2) + sh[:, None, None] * np.array([[0.0, 1.0], [0.0, 0.0]]))
    g = np.arange(32) + 0.5 - 16
    out_px = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(1, -1, 2) \
        - rng.normal(0, shift, (n, 1, 2))
    src = np.einsum("nij,npj->npi", np.linalg.inv(forward), out_px) + CANVAS / 2 - 0.5
    # Elastic: 3x3 random offsets interpolated over the image.
    t = np.linspace(0, 2, 32)
    i0 = np.minimum(t.astype(int), 1)
    w = np.zeros((32, 3))
    w[np.arange(32), i0] = 1 - (t - i0)
    w[np.arange(32), i0 + 1] += t - i0
    disp = np.einsum("rI,nIJc,sJ->nrsc", w, rng.normal(0, elastic, (n, 3, 3, 2)), w)
    src = np.rint(src + disp.reshape(n, -1, 2) * SIZE / 32).astype(int)
    inside = ((src >= 0) & (src < CANVAS)).all(-1)
    src = np.clip(src, 0, CANVAS - 1)
    bmp = (stack[which[:, None], src[..., 0], src[..., 1]] & inside).reshape(n, 32, 32)

    pens = rng.choice(3, n, p=np.asarray(pen) / sum(pen))
    # 4-neighbourhood: OR for a thicker pen, AND for a thinner one
    for op, sel in ((np.logical_or, pens == 1), (np.logical_and, pens == 2)):
        b = bmp[sel]
        e = b.copy()
        for sl_out, sl_in in (((slice(None), slice(1, None)), (slice(None), slice(None, -1))),
                              ((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
                              ((slice(1, None), slice(None)), (slice(None, -1), slice(None))),
                              ((slice(None, -1), slice(None)), (slice(1, None), slice(None)))):
            e[(slice(None),) + sl_out] = op(e[(slice(None),) + sl_out], b[(slice(None),) + sl_in])
        if op is np.logical_and:  # a thin pen must not erase the character
            keep = e.sum((1, 2)) > 0.5 * b.sum((1, 2))
            e[~keep] = b[~keep]
        bmp[sel] = e
    X = bmp.reshape(n, 8, 4, 8, 4).sum((2, 4)).reshape(n, 64) / 16.0
    return X, y
