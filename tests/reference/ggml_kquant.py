"""Reference quantizers for ggml's K formats (q2_K, q3_K, q4_K, q5_K, q6_K), in NumPy, written
from the published algorithm (ggml-quants.c: quantize_row_<fmt>_ref with make_qkx2_quants,
make_qx_quants, make_q3_quants and nearest_int), not from the C++ under test.

The C code works on one group of values at a time; here every group of a call is processed at
once (arrays of [groups, values]) and the loops run over the position inside a group, so each
running sum is still accumulated value by value in ggml's order. All arithmetic is float32, one
rounding per operation, with ggml's association (w * x * l is (w * x) * l): the searches compare
errors, so this is what makes the chosen scales, and so the bytes, identical. Where the C code
keeps the first of equal candidates (strict < or >), so does this.

params: {"op": "quantize", "type": "q2_K" | "q3_K" | "q4_K" | "q5_K" | "q6_K"}
input x (f32 [values], a multiple of 256) -> out_blocks (bytes as i64 [bytes])
"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import run  # noqa: E402

F32 = np.float32
ZERO = F32(0)
GROUP_MAX_EPS = F32(1e-15)
BYTES = {"q2_K": 84, "q3_K": 110, "q4_K": 144, "q5_K": 176, "q6_K": 210}


def nearest_int(v):
    """ggml nearest_int: round to nearest, ties to even (the 1.5 * 2^23 trick), for f32 v."""
    return np.rint(np.clip(v, F32(-4194303), F32(4194303))).astype(np.int64)


def to_f16(v):
    """f32 values -> (f16 bit patterns as u8 [.., 2] little-endian, the f16 values as f32)."""
    h = v.astype(F32).astype(np.float16)
    return h.reshape(-1, 1).view(np.uint8), h.astype(F32)


def first_max_by(key, value):
    """Per row, the value at the first position of the largest key (C loop `if (k > best)`
    starting from best = 0), and that key; 0 and 0 when no key is above 0."""
    rows = np.arange(key.shape[0])
    at = np.argmax(key, axis=1)
    best = key[rows, at]
    return np.where(best > 0, value[rows, at], ZERO), np.where(best > 0, best, ZERO)


def positive_max(v):
    """Per row, max(0, v...) as the C loop `if (v > m) m = v` from m = 0."""
    m = v.max(axis=1)
    return np.where(m > 0, m, ZERO).astype(F32)


# ---- the three scale searches -----------------------------------------------------------------

def make_qkx2_quants(x, w, nmax, rmin, rdelta, nstep, use_mad):
    """value ~ scale * L - the_min, L in 0..nmax. x, w: f32 [G, n]. Returns scale, the_min [G]
    and L (int [G, n])."""
    G, n = x.shape
    mn, mx = x[:, 0].copy(), x[:, 0].copy()
    sum_w = w[:, 0].copy()
    sum_x = sum_w * x[:, 0]
    for i in range(1, n):
        mn = np.where(x[:, i] < mn, x[:, i], mn)
        mx = np.where(x[:, i] > mx, x[:, i], mx)
        sum_w = sum_w + w[:, i]
        sum_x = sum_x + w[:, i] * x[:, i]
    mn = np.where(mn > 0, ZERO, mn).astype(F32)
    flat = mx == mn  # flat groups get L = 0, scale 0 at the end

    def span():  # max - min, with the min the search has reached so far (as in ggml)
        return np.where(flat, F32(1), mx - mn).astype(F32)

    def error(scale, offset, codes):
        total = np.zeros(G, F32)
        for i in range(n):
            diff = scale * codes[:, i].astype(F32) + offset - x[:, i]
            diff = np.abs(diff) if use_mad else diff * diff
            total = total + w[:, i] * diff
        return total

    mn0 = mn
    iscale = F32(nmax) / span()
    scale = F32(1) / iscale
    L = np.clip(nearest_int(iscale[:, None] * (x - mn[:, None])), 0, nmax)
    best = error(scale, mn, L)
    for step in range(nstep + 1):
        iscale = (F32(rmin) + F32(rdelta) * F32(step) + F32(nmax)) / span()
        laux = np.clip(nearest_int(iscale[:, None] * (x - mn[:, None])), 0, nmax)
        sum_l = np.zeros(G, F32)
        sum_l2 = np.zeros(G, F32)
        sum_xl = np.zeros(G, F32)
        for i in range(n):
            fl = laux[:, i].astype(F32)
            sum_l = sum_l + w[:, i] * fl
            sum_l2 = sum_l2 + w[:, i] * fl * fl
            sum_xl = sum_xl + w[:, i] * fl * x[:, i]
        D = sum_w * sum_l2 - sum_l * sum_l
        fits = D > 0
        D = np.where(fits, D, F32(1))
        this_scale = (sum_w * sum_xl - sum_x * sum_l) / D
        this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D
        clamp = this_min > 0
        this_min = np.where(clamp, ZERO, this_min).astype(F32)
        l2_safe = np.where(sum_l2 != 0, sum_l2, F32(1))
        this_scale = np.where(clamp, sum_xl / l2_safe, this_scale).astype(F32)
        cur = error(this_scale, this_min, laux)
        take = fits & (cur < best)
        L = np.where(take[:, None], laux, L)
        best = np.where(take, cur, best)
        scale = np.where(take, this_scale, scale).astype(F32)
        mn = np.where(take, this_min, mn).astype(F32)
    L = np.where(flat[:, None], 0, L)
    scale = np.where(flat, ZERO, scale).astype(F32)
    return scale, (-np.where(flat, mn0, mn)).astype(F32), L


def weighted_sums(x, codes):
    """sum (x^2 * x) * l and sum (x^2 * l) * l over a row, in order."""
    sumlx = np.zeros(x.shape[0], F32)
    suml2 = np.zeros(x.shape[0], F32)
    for i in range(x.shape[1]):
        w = x[:, i] * x[:, i]
        fl = codes[:, i].astype(F32)
        sumlx = sumlx + w * x[:, i] * fl
        suml2 = suml2 + w * fl * fl
    return sumlx, suml2


def make_qx_quants(x, nmax):
    """rmse_type 1, no importance weights: value ~ scale * (L - nmax), L in 0..2 nmax - 1."""
    mx, amax = first_max_by(np.abs(x), x)
    zero = amax < GROUP_MAX_EPS
    mx = np.where(zero, F32(1), mx).astype(F32)
    iscale = F32(-nmax) / mx
    l = np.clip(nearest_int(iscale[:, None] * x), -nmax, nmax - 1)
    L = l + nmax
    sumlx, suml2 = weighted_sums(x, l)
    scale = np.where(suml2 != 0, sumlx / np.where(suml2 != 0, suml2, F32(1)), ZERO).astype(F32)
    best = scale * sumlx
    for step in range(-9, 10):
        if step == 0:
            continue
        iscale = -(F32(nmax) + F32(0.1) * F32(step)) / mx
        l = np.clip(nearest_int(iscale[:, None] * x), -nmax, nmax - 1)
        sumlx, suml2 = weighted_sums(x, l)
        take = (suml2 > 0) & (sumlx * sumlx > best * suml2)
        L = np.where(take[:, None], l + nmax, L)
        scale = np.where(take, sumlx / np.where(take, suml2, F32(1)), scale).astype(F32)
        best = np.where(take, scale * sumlx, best).astype(F32)
    return np.where(zero, ZERO, scale).astype(F32), np.where(zero[:, None], 0, L)


def make_q3_quants(x, nmax):
    """do_rmse: first guess as make_qx_quants, then up to 5 rounds of single-code moves."""
    G, n = x.shape
    mx, amax = first_max_by(np.abs(x), x)
    zero = amax < GROUP_MAX_EPS
    mx = np.where(zero, F32(1), mx).astype(F32)
    iscale = F32(-nmax) / mx
    L = np.clip(nearest_int(iscale[:, None] * x), -nmax, nmax - 1)
    sumlx, suml2 = weighted_sums(x, L)
    alive = np.ones(G, bool)  # the C loop stops a group after a round without changes
    for _ in range(5):
        changed = np.zeros(G, np.int64)
        for i in range(n):
            xi = x[:, i]
            w = xi * xi
            old = L[:, i].astype(F32)
            slx = sumlx - w * xi * old
            movable = alive & (slx > 0)
            sl2 = suml2 - w * old * old
            new_l = np.clip(nearest_int(xi * sl2 / np.where(movable, slx, F32(1))), -nmax,
                            nmax - 1)
            movable &= new_l != L[:, i]
            fl = new_l.astype(F32)
            slx = slx + w * xi * fl
            sl2 = sl2 + w * fl * fl
            better = movable & (sl2 > 0) & (slx * slx * suml2 > sumlx * sumlx * sl2)
            L[:, i] = np.where(better, new_l, L[:, i])
            sumlx = np.where(better, slx, sumlx).astype(F32)
            suml2 = np.where(better, sl2, suml2).astype(F32)
            changed += better
        alive &= changed > 0
    scale = np.where(suml2 > 0, sumlx / np.where(suml2 > 0, suml2, F32(1)), ZERO).astype(F32)
    return np.where(zero, ZERO, scale).astype(F32), np.where(zero[:, None], 0, L + nmax)


# ---- bit packing, by value index ----------------------------------------------------------------

def pack_two_bits(codes):
    """codes [B, 256] (0..3) -> qs [B, 64]: value 128h + 32s + l is bits 2s..2s+1 of byte
    32h + l."""
    qs = np.zeros((codes.shape[0], 64), np.int64)
    for i in range(256):
        h, s, l = i // 128, (i % 128) // 32, i % 32
        qs[:, 32 * h + l] |= (codes[:, i] & 3) << (2 * s)
    return qs


def pack_plane_bits(bits):
    """bits [B, 256] (0/1) -> [B, 32]: bit of value i is bit i // 32 of byte i % 32."""
    out = np.zeros((bits.shape[0], 32), np.int64)
    for i in range(256):
        out[:, i % 32] |= bits[:, i] << (i // 32)
    return out


def pack_nibbles_256(codes):
    """codes [B, 256] (0..15) -> [B, 128]: chunk c = value // 64 uses bytes 32c..32c+31, value
    64c + r in the low nibble of byte 32c + r for r < 32, else the high nibble of byte
    32c + r - 32."""
    out = np.zeros((codes.shape[0], 128), np.int64)
    for i in range(256):
        c, r = i // 64, i % 64
        out[:, 32 * c + r % 32] |= (codes[:, i] & 15) << (4 * (r // 32))
    return out


def pack_k4_scales(sc, mn):
    """6-bit scales and mins [B, 8] -> the 12 bytes of q4_K / q5_K."""
    p = np.zeros((sc.shape[0], 12), np.int64)
    for j in range(8):
        if j < 4:
            p[:, j] |= sc[:, j]
            p[:, j + 4] |= mn[:, j]
        else:
            p[:, j + 4] |= (sc[:, j] & 15) | ((mn[:, j] & 15) << 4)
            p[:, j - 4] |= (sc[:, j] >> 4) << 6
            p[:, j] |= (mn[:, j] >> 4) << 6
    return p


def as_bytes(*parts):
    return np.concatenate([np.asarray(p).astype(np.int64) for p in parts], axis=1)


# ---- the formats ------------------------------------------------------------------------------

def requantize(x, d, codes, fn):
    """Codes of sub-blocks whose stored scale d [B, S] is non-zero are recomputed by fn(x, d)
    (x, d broadcast to [B, S, sub]); the others keep their fit's codes."""
    B, S = d.shape
    xs = x.reshape(B, S, -1)
    new = fn(xs, np.where(d != 0, d, F32(1))[:, :, None])
    return np.where((d != 0)[:, :, None], new, codes.reshape(B, S, -1)).reshape(B, 256)


def quant_q2_K(x):
    B = x.shape[0]
    xs = x.reshape(B * 16, 16)
    scales, mins, L = make_qkx2_quants(xs, np.abs(xs), 3, -0.5, 0.1, 15, True)
    scales, mins = scales.reshape(B, 16), mins.reshape(B, 16)
    max_scale, max_min = positive_max(scales), positive_max(mins)
    has_s, has_m = max_scale > 0, max_min > 0
    inv_s = F32(15) / np.where(has_s, max_scale, F32(1))
    inv_m = F32(15) / np.where(has_m, max_min, F32(1))
    sc = np.where(has_s[:, None], nearest_int(inv_s[:, None] * scales) & 0xFF, 0)
    mc = np.where(has_m[:, None], nearest_int(inv_m[:, None] * mins), 0)
    packed = (sc | (mc << 4)) & 0xFF
    d_bytes, d16 = to_f16(np.where(has_s, max_scale / F32(15), ZERO))
    m_bytes, m16 = to_f16(np.where(has_m, max_min / F32(15), ZERO))
    d = d16[:, None] * (packed & 15).astype(F32)
    dm = m16[:, None] * (packed >> 4).astype(F32)
    dm_full = np.repeat(dm, 16, axis=1).reshape(B, 16, 16)
    codes = requantize(x, d, L, lambda xs3, d3: np.clip(nearest_int((xs3 + dm_full) / d3), 0, 3))
    return as_bytes(packed, pack_two_bits(codes), d_bytes, m_bytes)


def quant_q3_K(x):
    B = x.shape[0]
    scales, L = make_q3_quants(x.reshape(B * 16, 16), 4)
    scales = scales.reshape(B, 16)
    max_scale, _ = first_max_by(np.abs(scales), scales)
    has = max_scale != 0
    iscale = F32(-32) / np.where(has, max_scale, F32(1))
    l = nearest_int(iscale[:, None] * scales)
    l = ((l + 128) & 0xFF) - 128  # ggml keeps it in an int8_t
    l = np.where(has[:, None], np.clip(l, -32, 31) + 32, 0)
    packed = np.zeros((B, 12), np.int64)
    for j in range(16):
        if j < 8:
            packed[:, j] |= l[:, j] & 15
        else:
            packed[:, j - 8] |= (l[:, j] & 15) << 4
        packed[:, 8 + j % 4] |= (l[:, j] >> 4) << (2 * (j // 4))
    d_bytes, d16 = to_f16(np.where(has, F32(1) / iscale, ZERO))
    d = d16[:, None] * (l - 32).astype(F32)  # l is 0 (stored 0, scale -32) when not `has`
    codes = requantize(x, d, L, lambda xs3, d3: np.clip(nearest_int(xs3 / d3), -4, 3) + 4)
    high = (codes > 3).astype(np.int64)
    return as_bytes(pack_plane_bits(high), pack_two_bits(codes - 4 * high), packed, d_bytes)


def quant_k_scale_min(x, nmax, rmin, nstep):
    """q4_K / q5_K up to the code packing: returns head bytes [B, 16] and codes [B, 256]."""
    B = x.shape[0]
    xs = x.reshape(B * 8, 32)
    sum_x2 = np.zeros(B * 8, F32)
    for i in range(32):
        sum_x2 = sum_x2 + xs[:, i] * xs[:, i]
    av_x = np.sqrt(sum_x2 / F32(32))
    w = av_x[:, None] + np.abs(xs)
    scales, mins, L = make_qkx2_quants(xs, w, nmax, rmin, 0.1, nstep, False)
    scales, mins = scales.reshape(B, 8), mins.reshape(B, 8)
    max_scale, max_min = positive_max(scales), positive_max(mins)
    inv_s = np.where(max_scale > 0, F32(63) / np.where(max_scale > 0, max_scale, F32(1)), ZERO)
    inv_m = np.where(max_min > 0, F32(63) / np.where(max_min > 0, max_min, F32(1)), ZERO)
    ls = np.minimum(63, nearest_int(inv_s[:, None] * scales) & 0xFF)  # via uint8_t, as ggml
    lm = np.minimum(63, nearest_int(inv_m[:, None] * mins) & 0xFF)
    d_bytes, d16 = to_f16(max_scale / F32(63))
    m_bytes, m16 = to_f16(max_min / F32(63))
    d = d16[:, None] * ls.astype(F32)
    dm = np.repeat(m16[:, None] * lm.astype(F32), 32, axis=1).reshape(B, 8, 32)
    codes = requantize(x, d, L, lambda xs3, d3: np.clip(nearest_int((xs3 + dm) / d3), 0, nmax))
    return as_bytes(d_bytes, m_bytes, pack_k4_scales(ls, lm)), codes


def quant_q4_K(x):
    head, codes = quant_k_scale_min(x, 15, -1.0, 20)
    return as_bytes(head, pack_nibbles_256(codes))


def quant_q5_K(x):
    head, codes = quant_k_scale_min(x, 31, -0.5, 15)
    return as_bytes(head, pack_plane_bits(codes >> 4), pack_nibbles_256(codes & 15))


def quant_q6_K(x):
    B = x.shape[0]
    scales, L = make_qx_quants(x.reshape(B * 16, 16), 32)
    scales = scales.reshape(B, 16)
    max_scale, max_abs = first_max_by(np.abs(scales), scales)
    zero = max_abs < GROUP_MAX_EPS
    iscale = F32(-128) / np.where(zero, F32(1), max_scale)
    sc = np.minimum(127, nearest_int(iscale[:, None] * scales))
    sc = ((sc + 128) & 0xFF) - 128  # stored in an int8_t
    d_bytes, d16 = to_f16(F32(1) / iscale)
    d = d16[:, None] * sc.astype(F32)
    codes = requantize(x, d, L, lambda xs3, d3: np.clip(nearest_int(xs3 / d3), -32, 31) + 32)
    # value 128h + 32g + l: low 4 bits in byte 64h + l + 32 (g % 2), nibble g // 2; top 2 bits
    # in bits 2g.. of qh byte 32h + l.
    ql = np.zeros((B, 128), np.int64)
    qh = np.zeros((B, 64), np.int64)
    for i in range(256):
        h, g, l = i // 128, (i % 128) // 32, i % 32
        ql[:, 64 * h + l + 32 * (g % 2)] |= (codes[:, i] & 15) << (4 * (g // 2))
        qh[:, 32 * h + l] |= (codes[:, i] >> 4) << (2 * g)
    blocks = as_bytes(ql, qh, sc & 0xFF, d_bytes)
    return np.where(zero[:, None], 0, blocks)


QUANTIZE = {"q2_K": quant_q2_K, "q3_K": quant_q3_K, "q4_K": quant_q4_K, "q5_K": quant_q5_K,
            "q6_K": quant_q6_K}


def compute(inp, params):
    name = params["type"]
    assert params["op"] == "quantize"
    x = inp["x"].numpy().astype(F32).reshape(-1, 256)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        blocks = QUANTIZE[name](x)
    assert blocks.shape[1] == BYTES[name], (name, blocks.shape)
    return {"blocks": torch.from_numpy(blocks.astype(np.uint8).astype(np.int64).reshape(-1))}


run(compute)
