r"""Regrain: the fitted colour map applied to an image's base layer, its grain kept as it was.

A colour map stretches thin colour clouds to fill the target's spread; in smooth regions the
only variation there is to stretch is sensor grain and JPEG blocking, so every pure colour map
that reaches the target also amplifies them. The output image does not have to be a function of
colour alone. Following Rabin, Delon & Gousseau (2011), who regularise the transport
displacement with the source as the guide, and He, Sun & Tang's guided filter (2013) in its
fast subsampled form (He & Sun 2015):

1. the **base layer** :math:`B = \mathrm{GF}_I(I;\ r_b, \epsilon_b)` is the image smoothed by a
   colour guided filter with itself as the guide: structure stronger than
   :math:`\sqrt{\epsilon_b}` survives, grain and 8×8 blocks do not;
2. the map :math:`T` is fitted on the colours of :math:`B` (:func:`base_colors`), so that it
   stretches the image's structure, not its grain, onto the target;
3. the **displacement** :math:`D = T(B) - B` is filtered once more with the image as the guide,
   :math:`\mathrm{GF}_I(D;\ r, \epsilon)`, which keeps it locally affine in :math:`I` (edges and
   texture keep their own displacement) and flat where :math:`I` is flat; each window's slope
   :math:`A` is capped, :math:`\|A\|_F \le` :attr:`RegrainConfig.gain_cap`, so that grain and
   fine texture riding on structure where the map is steep pass with a gain of at most
   :math:`1 + g` (:func:`_displacement_coefficients`);
4. the output is :math:`O = I + \mathrm{GF}_I(D)`: the grain of :math:`I` passes with gain
   about 1, the colours follow :math:`T`.

Both filters run on an image subsampled by :attr:`RegrainConfig.scale` (box means); the
coefficients of the second are upsampled bilinearly and applied to the full-resolution image,
in bands of rows with halos, so memory is bounded and the result does not depend on the band
size (every value is computed from the same neighbourhood in the same order). The map is
evaluated through the look's :class:`~otcolor.color.ColorTable` (exact at the 8-bit colours,
trilinear in between), so its cost is that of the distinct colours, not of the pixels.

The output is **spatial**: the same colour can come out differently in two places. Outputs
that must be a colour function (LUTs, ``--no-regrain``) use the pure map.
"""

from __future__ import annotations

__all__ = [
    "REGRAIN",
    "RegrainConfig",
    "base_at",
    "base_colors",
    "detail_power",
    "guided_filter",
    "regrain",
    "spread_colours",
]

from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .color import ColorTable, apply_look
from .errors import UsageError
from .io.encode import _quantize
from .look import REGRAIN, Look, RegrainConfig

#: Channels :func:`_box` filters together (a band of three stays in a 512 kB cache).
_BOX_CHANNELS = 3

#: Low-resolution rows per band: bounds memory (about 1 kB per low-resolution pixel of width).
BAND_ROWS = 64

#: Full-resolution rows blended at a time (their coefficient planes take 48 bytes a pixel).
FULL_ROWS = 32


def _box(x: Tensor, r: int) -> Tensor:
    r"""Mean over the :math:`(2r+1)^2` window clipped to the image, over the last two axes.

    Separable, and each value is a sum over its own window in a fixed order (not a difference
    of cumulative sums), so it does not depend on where a band starts. Summing shifted views
    is bit-identical to ``avg_pool2d(count_include_pad=False)`` and 1.3-1.6x faster on one core
    (measured at 21 channels of 200x2000, radii 2 and 4).
    """

    shape = x.shape
    x = x.reshape(-1, *shape[-2:])
    # A few channels at a time: the 2r + 1 passes over a band then stay in the core's cache
    # (1.0-1.75x faster than all channels at once at 9-21 channels of 96x960, one core).
    step = _BOX_CHANNELS
    parts = [_box_along(_box_along(x[c : c + step], r, 2), r, 1) for c in range(0, len(x), step)]
    return torch.cat(parts).reshape(shape)


def _box_along(x: Tensor, r: int, dim: int) -> Tensor:
    r"""The clipped window mean of :func:`_box` along one axis (``dim`` 1 or 2 of a 3-D x)."""

    n = x.shape[dim]
    padded = F.pad(x, (r, r, 0, 0) if dim == 2 else (0, 0, r, r))
    total = padded.narrow(dim, 0, n).clone()
    for shift in range(1, 2 * r + 1):
        total += padded.narrow(dim, shift, n)
    index = torch.arange(n, device=x.device)
    count = (index.clamp(max=n - 1 - r) - index.clamp(min=r) + 2 * r + 1).to(x.dtype)
    return total / (count if dim == 2 else count[:, None])


def _contract(x: Tensor, a: Tensor) -> Tensor:
    r""":math:`\sum_i x_i a_i` over the first axis, in the order i = 0, 1, 2: the same float32
    values as ``torch.einsum("ihw,ichw->chw", ...)`` (checked in tests), 1.5-2x faster on
    one core, since einsum runs a batched 1x3 matrix product per pixel."""

    return x[0] * a[0] + x[1] * a[1] + x[2] * a[2]


def _coefficients(
    guide: Tensor,
    p: Tensor | None,
    r: int,
    eps: float | Tensor,
    shape: Callable[[Tensor], Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    r"""The colour guided filter's local affine model :math:`p \approx A^\top I + b`.

    Arguments:
        guide: :math:`I`, :math:`(3, H, W)`.
        p: the filtered signal, :math:`(C, H, W)`; ``None`` for :math:`p = I`, where
            :math:`\mathrm{cov}(I, p) = \Sigma_I` and so
            :math:`A = \mathrm{Id} - \epsilon (\Sigma_I + \epsilon\,\mathrm{Id})^{-1}`
            without the cross moments (a third fewer box filters).

    Returns:
        :math:`\bar{A}`, :math:`(3, C, H, W)`, and :math:`\bar{b}`, :math:`(C, H, W)`: the
        window solutions of :math:`(\Sigma_I + \epsilon\,\mathrm{Id}) A = \mathrm{cov}(I, p)`,
        averaged over the windows that cover each pixel.
    """

    pairs = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]
    moments = [guide] + [guide[i : i + 1] * guide[j : j + 1] for i, j in pairs]
    if p is not None:
        moments += [p] + [guide[i : i + 1] * p for i in range(3)]
    boxed = _box(torch.cat(moments), r)  # one call: the box filter is memory-bound
    mean_i, second = boxed[:3], boxed[3:9]
    s = second - torch.stack([mean_i[i] * mean_i[j] for i, j in pairs])
    s00, s01, s02, s11, s12, s22 = (
        s[k] + (eps if i == j else 0.0) for k, (i, j) in enumerate(pairs)
    )
    # The inverse of a symmetric positive definite 3x3 matrix by its adjugate, per pixel.
    c00 = s11 * s22 - s12 * s12
    c01 = s02 * s12 - s01 * s22
    c02 = s01 * s12 - s02 * s11
    c11 = s00 * s22 - s02 * s02
    c12 = s01 * s02 - s00 * s12
    c22 = s00 * s11 - s01 * s01
    det = s00 * c00 + s01 * c01 + s02 * c02
    inv = torch.stack([c00, c01, c02, c01, c11, c12, c02, c12, c22]).reshape(3, 3, *det.shape)
    inv = inv / det
    if p is None:
        mean_p = mean_i
        a = torch.eye(3, dtype=inv.dtype, device=inv.device)[:, :, None, None] - eps * inv
    else:
        c = p.shape[0]
        mean_p = boxed[9 : 9 + c]
        cross = boxed[9 + c :].reshape(3, c, *p.shape[1:]) - mean_i[:, None] * mean_p[None]
        a = _contract(inv.transpose(0, 1)[:, :, None], cross[:, None])  # (3, C, h, w)
    if shape is not None:  # the slopes changed per window; the model still passes the mean
        a = shape(a)
    b = mean_p - _contract(mean_i[:, None], a)
    c = a.shape[1]
    boxed = _box(torch.cat([a.reshape(3 * c, *b.shape[1:]), b]), r)
    return boxed[: 3 * c].reshape(a.shape), boxed[3 * c :]


def guided_filter(guide: Tensor, p: Tensor, r: int, eps: float) -> Tensor:
    r"""He, Sun & Tang's colour guided filter, :math:`\bar{A}^\top I + \bar{b}`.

    Arguments:
        guide: :math:`I`, :math:`(3, H, W)`.
        p: :math:`(C, H, W)`.
        r: the window radius.
        eps: the regulariser: windows with variance well below it are averaged flat.

    Returns:
        The filtered :math:`p`, :math:`(C, H, W)`.
    """

    a, b = _coefficients(guide, None if p is guide else p, r, eps)
    return _contract(guide[:, None], a) + b


def _displacement_coefficients(
    guide: Tensor, shift: Tensor, config: RegrainConfig
) -> tuple[Tensor, Tensor]:
    r"""The coefficients of :math:`\mathrm{GF}_I(D;\ r, \epsilon)`, :math:`\bar{A}` (3, 3, h, w)
    and :math:`\bar{b}` (3, h, w), with each window's slope :math:`A` shaped before the windows
    are averaged, as :class:`RegrainConfig`'s ``isotropy`` and ``gain_cap`` say."""

    def shape(a: Tensor) -> Tensor:
        if config.isotropy > 0:  # towards a scalar gain: colour texture keeps its luma pattern
            scalar = torch.einsum("iihw->hw", a) / 3
            eye = torch.eye(3, dtype=a.dtype, device=a.device)[:, :, None, None]
            a = (1 - config.isotropy) * a + config.isotropy * scalar * eye
        if config.gain_cap > 0:  # grain passes with gain at most 1 + gain_cap
            norm = a.square().sum(dim=(0, 1)).sqrt()
            a = a * (config.gain_cap / norm.clamp(min=config.gain_cap))
        return a

    return _coefficients(guide, shift, config.low_radii[1], config.eps, shape)


def _rows(a: np.ndarray, device: torch.device | str) -> Tensor:
    r"""A band of an array as a tensor; read-only arrays (a decoded ``PIL`` image seen through
    ``np.asarray``) are copied, a band at a time, since torch cannot share them."""

    a = np.ascontiguousarray(a)
    return torch.from_numpy(a if a.flags.writeable else a.copy()).to(device)


def _downsample(rows: np.ndarray, scale: int, device: torch.device | str) -> Tensor:
    r"""Box means of ``scale`` × ``scale`` blocks, the last ones edge-replicated:
    :math:`(h, W, 3)` → :math:`(3, \lceil h/s \rceil, \lceil W/s \rceil)`, float32."""

    x = _rows(rows, device)
    x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
    x = x.permute(2, 0, 1)
    if scale == 1:
        return x.contiguous()
    pad_h, pad_w = -x.shape[1] % scale, -x.shape[2] % scale
    if pad_h or pad_w:
        x = F.pad(x[None], (0, pad_w, 0, pad_h), mode="replicate")[0]
    return F.avg_pool2d(x[None], scale)[0]


def _bands(height: int, scale: int, halo: int) -> Iterator[tuple[int, int, int, int]]:
    r"""Low-resolution bands ``(begin, end, slab_begin, slab_end)`` covering ``height`` rows."""

    low = -(-height // scale)
    for begin in range(0, low, BAND_ROWS):
        end = min(begin + BAND_ROWS, low)
        yield begin, end, max(0, begin - halo), min(low, end + halo)


def _base_layer(guide: Tensor, config: RegrainConfig) -> Tensor:
    r""":math:`B = \mathrm{GF}_I(I;\ r_b, \epsilon_b)` of a slab, clipped to :math:`[0, 1]`."""

    return guided_filter(guide, guide, config.low_radii[0], config.base_eps).clamp(0, 1)


def _slab(rgb: np.ndarray, scale: int, lo: int, hi: int, device: torch.device | str) -> Tensor:
    r"""Low-resolution rows ``[lo, hi)`` of the image."""

    return _downsample(rgb[lo * scale : hi * scale], scale, device)


def base_colors(
    rgb: np.ndarray,
    config: RegrainConfig | None = None,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    r"""The base layer of an image at the filter's resolution: the colours the map is fitted on.

    Arguments:
        rgb: the image, :math:`(H, W, 3)`, uint8 or float in :math:`[0, 1]`.

    Returns:
        :math:`B`, :math:`(\lceil H/s \rceil, \lceil W/s \rceil, 3)`, float32, clipped to
        :math:`[0, 1]`.
    """

    config = config or REGRAIN
    halo = 2 * config.low_radii[0]
    s = config.scale
    out = np.empty((-(-rgb.shape[0] // s), -(-rgb.shape[1] // s), 3), np.float32)
    for begin, end, lo, hi in _bands(rgb.shape[0], s, halo):
        base = _base_layer(_slab(rgb, s, lo, hi, device), config)
        out[begin:end] = base[:, begin - lo : end - lo].permute(1, 2, 0).cpu().numpy()
    return out


#: Pixels drawn to measure an image's detail power (:func:`detail_power`).
DETAIL_SAMPLES = 50_000


def base_at(base: np.ndarray, picks: np.ndarray, size: tuple[int, int], scale: int) -> np.ndarray:
    r"""The base layer read bilinearly (as the regrain upsamples its coefficients) at
    full-resolution pixels: ``picks`` are flat indices into an image of ``size``
    :math:`(H, W)`, :math:`(N,)` → :math:`(N, 3)` float32."""

    rows, cols = np.divmod(picks, size[1])
    r0, r1, rw = (v[rows] for v in _bilinear(size[0], base.shape[0], scale))
    c0, c1, cw = (v[cols] for v in _bilinear(size[1], base.shape[1], scale))
    out = np.zeros((picks.size, 3), np.float32)
    for r, wr in ((r0, 1 - rw), (r1, rw)):
        for c, wc in ((c0, 1 - cw), (c1, cw)):
            out += (wr * wc)[:, None] * base[r, c]
    return out


def _pixels_at(rgb: np.ndarray, picks: np.ndarray) -> np.ndarray:
    r"""Image colours at flat indices, :math:`(N, 3)` float32 in :math:`[0, 1]`."""

    x = rgb.reshape(-1, 3)[picks].astype(np.float32)
    return x / 255 if rgb.dtype == np.uint8 else x


def detail_power(rgb: np.ndarray, base: np.ndarray, scale: int) -> float:
    r""":math:`d = \mathbb{E}\|I - B\|^2`: the colour variance an image holds above its base
    layer (:func:`base_colors`, read bilinearly), over :data:`DETAIL_SAMPLES` pixels drawn with
    a fixed seed. ``rgb`` is :math:`(H, W, 3)`."""

    count = rgb.shape[0] * rgb.shape[1]
    picks = np.random.default_rng(0).choice(count, min(DETAIL_SAMPLES, count), replace=False)
    detail = _pixels_at(rgb, picks) - base_at(base, picks, rgb.shape[:2], scale)
    return float(np.square(detail).sum(-1).mean())


def spread_colours(
    rgb: np.ndarray, base: np.ndarray, picks: np.ndarray, config: RegrainConfig, source: float
) -> np.ndarray:
    r"""Target colours whose spread, plus the source's detail, is the target's own spread.

    The output keeps the source's detail (power :math:`d_s`, :func:`detail_power`) around the
    map's colours, so a map fitted onto the target's base layer :math:`B_t` leaves the output
    narrower than the target wherever the target holds more detail (:math:`d_t`) than the
    source. These colours put part of it back:

    .. math:: B_t + \lambda (I_t - B_t), \qquad
        \lambda^2 = \sigma \, \mathrm{clip}(1 - d_s / d_t, 0, 1)

    with :math:`\sigma` = ``config.spread``; an image sent onto itself gets :math:`B_t`.

    Arguments:
        rgb: the target :math:`I_t`, :math:`(H, W, 3)`; base: its :func:`base_colors`.
        picks: the pixels to return, flat indices :math:`(N,)`.
        source: :math:`d_s`.

    Returns:
        :math:`(N, 3)` float32 in :math:`[0, 1]`.
    """

    b = base_at(base, picks, rgb.shape[:2], config.scale)
    detail = _pixels_at(rgb, picks) - b
    power = float(np.square(detail).sum(-1).mean()) if picks.size else 0.0
    share = config.spread * float(np.clip(1 - source / max(power, 1e-12), 0.0, 1.0))
    return np.clip(b + np.float32(np.sqrt(share)) * detail, 0, 1)


def _map_lattice(table: ColorTable, colours: np.ndarray) -> np.ndarray:
    r"""The look at float colours :math:`(N, 3)` in :math:`[0, 1]`: exact at the 8-bit colours
    (the table's values), trilinear between them."""

    scaled = colours * np.float32(255)
    corner = np.minimum(np.floor(scaled), 254).astype(np.int32)  # keys < 2^24 fit int32
    frac = (scaled - corner).astype(np.float32)
    base = corner[:, 0] | (corner[:, 1] << 8) | (corner[:, 2] << 16)
    offsets = [dr | (dg << 8) | (db << 16) for db in (0, 1) for dg in (0, 1) for dr in (0, 1)]
    keys = (base[None] + np.asarray(offsets, np.int32)[:, None]).astype(np.uint32)  # (8, N)
    table.update(keys.reshape(-1))
    values = table.values()
    rows = table.index[keys]
    # Each axis's weights once, (3, N) contiguous: (1 - f, f) for the corner's bit 0 and 1.
    sides = ((1 - frac).T.copy(), frac.T.copy())
    out = np.zeros_like(colours, dtype=np.float32)
    for k, o in enumerate(offsets):
        # (w_r w_g) w_b in that order: the same float32 products as 1 * w_r * w_g * w_b.
        w = sides[o & 1][0] * sides[(o >> 8) & 1][1]
        w *= sides[(o >> 16) & 1][2]
        out += w[:, None] * np.take(values, rows[k], axis=0)
    return out


def _widen(coef: Tensor, scale: int) -> Tensor:
    r"""Linear upsampling of every row by ``scale``, :math:`(C, h, w)` → :math:`(C, h, w s)`:
    the sample positions and clamping of :func:`_bilinear` (``align_corners=False``) in one
    fused pass, several times faster than gathering columns through index tensors. Rows are
    independent, so a row comes out the same whichever band computes it; the values equal the
    gather's within float32 rounding."""

    channels, rows, width = coef.shape
    flat = coef.reshape(1, channels * rows, width)
    wide = F.interpolate(flat, scale_factor=scale, mode="linear", align_corners=False)
    return wide.reshape(channels, rows, width * scale)


def _bilinear(size: int, low: int, scale: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Bilinear upsampling from ``low`` to ``size`` samples, as ``F.interpolate`` with
    ``align_corners=False``: source indices ``i0``, ``i1`` and the weight of ``i1``."""

    pos = np.maximum((np.arange(size) + 0.5) / scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(pos).astype(np.int64), low - 1)
    i1 = np.minimum(i0 + 1, low - 1)
    return i0, i1, (pos - i0).astype(np.float32)


def regrain(
    look: Look,
    rgb: np.ndarray,
    config: RegrainConfig | None = None,
    *,
    mask: np.ndarray | None = None,
    table: ColorTable | None = None,
    base: np.ndarray | None = None,
    as_uint8: bool = False,
) -> np.ndarray:
    r"""Applies a look to an image with the regrain: :math:`O = I + \mathrm{GF}_I(T(B) - B)`.

    Arguments:
        look: the look (its map, space, strength and luminance setting give :math:`T`).
        rgb: the image :math:`I`, :math:`(H, W, 3)`, uint8 or float in :math:`[0, 1]`.
        config: the filter settings (default: the look's, or :data:`~otcolor.look.REGRAIN`).
        mask: where to apply, :math:`(H, W)` in :math:`[0, 1]`: :math:`I + m\,(O - I)`.
        table: a colour table of ``look`` to reuse (video frames); a new one otherwise.
        base: :func:`base_colors` of ``rgb`` with the same ``config``, when the caller has it
            already (it fitted the map on it); the same output, without filtering twice.
        as_uint8: return the output's 8-bit rounding, :math:`\mathrm{round}(255\,O)`, made
            band by band: the bytes :func:`~otcolor.io.save_image` writes for the float
            output, without a float copy of the image (a quarter of the memory).

    Returns:
        The output, :math:`(H, W, 3)`, float32 in :math:`[0, 1]` (uint8 with ``as_uint8``).
    """

    config = config or look.settings.regrain or REGRAIN
    height, width = rgb.shape[:2]
    if getattr(look.map, "constant", False):  # one output colour: no grain to keep
        bit_depth = 8 if rgb.dtype == np.uint8 else 16
        table = table if bit_depth == 8 else None
        flat = apply_look(look, rgb, bit_depth=bit_depth, mask=mask, table=table)
        return _quantize(flat, np.uint8) if as_uint8 else flat  # save_image's rounding
    if mask is not None and mask.shape != (height, width):
        raise UsageError(f"mask is {mask.shape[1]}x{mask.shape[0]}, image is {width}x{height}")
    table = ColorTable(look) if table is None else table
    device = look.device
    low_shape = (-(-height // config.scale), -(-width // config.scale), 3)
    if base is not None and base.shape != low_shape:
        raise UsageError(f"base layer is {base.shape}, expected {low_shape} for this image")
    s = config.scale
    low_w = -(-width // s)
    c0, c1, cw = _bilinear(width, low_w, s)
    c0_t, c1_t = torch.from_numpy(c0).to(device), torch.from_numpy(c1).to(device)
    cw_t = torch.from_numpy(cw).to(device)
    r0, r1, rw = _bilinear(height, -(-height // s), s)
    out = np.empty((height, width, 3), np.uint8 if as_uint8 else np.float32)
    for begin, end, lo, hi in _bands(height, s, config.halo):
        guide = _slab(rgb, s, lo, hi, device)  # (3, h, w)
        if base is None:
            layer = _base_layer(guide, config)
        else:
            layer = _rows(base[lo:hi], device).permute(2, 0, 1)
        flat = layer.permute(1, 2, 0).reshape(-1, 3).cpu().numpy()
        mapped = torch.from_numpy(_map_lattice(table, flat)).to(device)
        shift = (mapped.reshape(*layer.shape[1:], 3).permute(2, 0, 1) - layer).contiguous()
        a, b = _displacement_coefficients(guide, shift, config)  # (3, 3, h, w), (3, h, w)
        coef = torch.cat([a.reshape(9, *b.shape[1:]), b])  # (12, h, w)
        # Full-resolution rows whose bilinear sources are low rows of this band's own range.
        y_lo = 0 if begin == 0 else int(np.searchsorted(r0, begin, "left"))
        y_hi = height if end * s >= height else int(np.searchsorted(r0, end, "left"))
        if y_hi <= y_lo:
            continue
        # A few full-resolution rows at a time: their (12, rows, W) coefficient planes stay
        # small (the whole band's were 0.2 GB at 6000 pixels wide); rows are independent, so
        # the values do not depend on the split.
        for top in range(y_lo, y_hi, FULL_ROWS):
            bottom = min(top + FULL_ROWS, y_hi)
            first, last = int(r0[top]) - lo, int(r1[bottom - 1]) - lo + 1
            part = coef[:, first:last]  # the low rows these rows read
            if s & (s - 1) == 0:  # 1/s is exact: the fused kernel places samples as _bilinear
                wide = _widen(part, s)[:, :, :width]  # (12, h, W)
            else:
                wide = part[:, :, c0_t] * (1 - cw_t) + part[:, :, c1_t] * cw_t
            i0 = torch.from_numpy(r0[top:bottom] - lo - first).to(device)
            i1 = torch.from_numpy(r1[top:bottom] - lo - first).to(device)
            wy = torch.from_numpy(rw[top:bottom]).to(device)[None, :, None]
            full = wide[:, i0] * (1 - wy) + wide[:, i1] * wy  # (12, rows, W)
            x = _rows(rgb[top:bottom], device)
            x = (x.float() / 255 if x.dtype == torch.uint8 else x.float()).permute(2, 0, 1)
            a_full = full[:9].reshape(3, 3, *full.shape[1:])
            o = x + _contract(x[:, None], a_full) + full[9:]
            if mask is not None:
                m = _rows(mask[top:bottom].astype(np.float32, copy=False), device)
                o = x + m * (o - x)
            o = o.clamp(0, 1)
            if as_uint8:  # save_image's rounding: float32 times 255, half to even
                o = (o * 255).round_().to(torch.uint8)
            out[top:bottom] = o.permute(1, 2, 0).cpu().numpy()
    return out
