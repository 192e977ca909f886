//! Quantisers from f32 into Q8_0, Q4_0, Q4_K and Q6_K.
//!
//! These port ggml's reference quantisers (`quantize_row_*_ref` in
//! `ggml-quants.c`, the ones ggml uses to write model files deterministically)
//! operation for operation. The k-quants search for their scales the same way
//! ggml does (`make_qkx2_quants` for Q4_K, `make_qx_quants` for Q6_K), without
//! importance weights.

use half::f16;
use thiserror::Error;

use super::dequant::get_scale_min_k4;
use super::types::{GgmlType, QK_K};

/// The types [`quantize`] can produce.
pub const QUANTIZE_TYPES: [GgmlType; 4] =
    [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4K, GgmlType::Q6K];

/// Why a buffer could not be quantised.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QuantizeError {
    #[error("cannot quantise to {0}: only Q8_0, Q4_0, Q4_K and Q6_K are supported")]
    Unsupported(GgmlType),
    #[error("{ty}: {len} values is not a whole number of {block_size}-value blocks")]
    PartialBlock {
        ty: GgmlType,
        len: usize,
        block_size: usize,
    },
}

/// Quantises `src` to `ty`, appending whole blocks to `dst`. `src.len()` must
/// be a multiple of `ty.block_size()`; on error `dst` is left as it was.
pub fn quantize(ty: GgmlType, src: &[f32], dst: &mut Vec<u8>) -> Result<(), QuantizeError> {
    macro_rules! blocks {
        ($ty:ident, $f:expr) => {
            each_block::<{ GgmlType::$ty.block_size() }, { GgmlType::$ty.block_bytes() }>(
                GgmlType::$ty,
                src,
                dst,
                $f,
            )
        };
    }
    match ty {
        GgmlType::Q8_0 => blocks!(Q8_0, q8_0),
        GgmlType::Q4_0 => blocks!(Q4_0, q4_0),
        GgmlType::Q4K => blocks!(Q4K, q4_k),
        GgmlType::Q6K => blocks!(Q6K, q6_k),
        _ => Err(QuantizeError::Unsupported(ty)),
    }
}

fn each_block<const N: usize, const BYTES: usize>(
    ty: GgmlType,
    src: &[f32],
    dst: &mut Vec<u8>,
    f: impl Fn(&[f32; N]) -> [u8; BYTES],
) -> Result<(), QuantizeError> {
    if !src.len().is_multiple_of(N) {
        return Err(QuantizeError::PartialBlock {
            ty,
            len: src.len(),
            block_size: N,
        });
    }
    dst.reserve(src.len() / N * BYTES);
    for x in src.chunks_exact(N) {
        // chunks_exact yields exactly N values: the conversion always succeeds.
        if let Ok(x) = x.try_into() {
            dst.extend_from_slice(&f(x));
        }
    }
    Ok(())
}

/// Round half to even, as ggml's `nearest_int` (which adds 1.5 * 2^23 and reads
/// the mantissa) does for every input it accepts (|v| < 2^22).
#[inline(always)]
fn nearest_int(v: f32) -> i32 {
    v.round_ties_even() as i32
}

/// Below this a group counts as all zero (ggml's `GROUP_MAX_EPS`).
const GROUP_MAX_EPS: f32 = 1e-15;

fn f16_bytes(v: f32) -> [u8; 2] {
    f16::from_f32(v).to_le_bytes()
}

// ---- 32-weight blocks -------------------------------------------------------

/// Q8_0: d = absmax / 127, q = round(x / d) with ties away from zero.
fn q8_0(x: &[f32; 32]) -> [u8; 34] {
    let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut y = [0u8; 34];
    y[..2].copy_from_slice(&f16_bytes(d));
    for (q, &v) in y[2..].iter_mut().zip(x) {
        *q = (v * id).round() as i8 as u8;
    }
    y
}

/// Q4_0: d = -(the value of largest magnitude) / 8, so that value lands exactly
/// on quant 0 (level -8) and the other side gets the remaining levels up to +7.
fn q4_0(x: &[f32; 32]) -> [u8; 18] {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    // ggml truncates x / d + 8.5 (always >= 0.5 here), i.e. rounds half up.
    let quant = |v: f32| ((v * id + 8.5) as i8).min(15) as u8;
    let mut y = [0u8; 18];
    y[..2].copy_from_slice(&f16_bytes(d));
    for j in 0..16 {
        y[2 + j] = quant(x[j]) | (quant(x[j + 16]) << 4);
    }
    y
}

// ---- k-quants ---------------------------------------------------------------

/// Fits `x[i] ≈ scale * l[i] - the_min` with `l[i]` in `0..=nmax` and
/// `the_min >= 0`, minimising the `weights`-weighted squared error (ggml's
/// `make_qkx2_quants` without `use_mad`). It starts from the min/max fit, then
/// tries `nstep + 1` grid densities `(nmax + rmin + rdelta * is) / (max - min)`,
/// refits scale and min to each rounding by weighted least squares, and keeps
/// the best. Returns `(scale, the_min)`; `laux` is scratch.
#[allow(clippy::too_many_arguments)]
fn make_qkx2_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    l: &mut [u8],
    laux: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
) -> (f32, f32) {
    let n = x.len();
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        min = if x[i] < min { x[i] } else { min };
        max = if x[i] > max { x[i] } else { max };
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l[..n].fill(0);
        return (0.0, -min);
    }
    let quant = |iscale: f32, min: f32, v: f32| nearest_int(iscale * (v - min)).clamp(0, nmax);
    let sq_error = |scale: f32, min: f32, l: &[u8]| {
        let mut e = 0f32;
        for i in 0..n {
            let diff = scale * f32::from(l[i]) + min - x[i];
            e += weights[i] * (diff * diff);
        }
        e
    };

    let iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    for i in 0..n {
        l[i] = quant(iscale, min, x[i]) as u8;
    }
    let mut best_error = sq_error(scale, min, l);
    // As in ggml, once a step improves the fit its min also shifts the grids
    // of the steps after it.
    for is in 0..=nstep {
        let iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0f32, 0f32, 0f32);
        for i in 0..n {
            let q = quant(iscale, min, x[i]);
            laux[i] = q as u8;
            let (w, q) = (weights[i], q as f32);
            sum_l += w * q;
            sum_l2 += w * q * q;
            sum_xl += w * q * x[i];
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let cur_error = sq_error(this_scale, this_min, laux);
            if cur_error < best_error {
                l[..n].copy_from_slice(&laux[..n]);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// Q4_K: eight sub-blocks of 32 fitted by `make_qkx2_quants` with weights
/// `rms(x) + |x|`; their scales and mins are then quantised to 6 bits against
/// the largest of each, and the weights re-quantised against those.
fn q4_k(x: &[f32; QK_K]) -> [u8; 144] {
    let mut l = [0u8; QK_K];
    let mut laux = [0u8; 32];
    let mut weights = [0f32; 32];
    let mut scales = [0f32; QK_K / 32];
    let mut mins = [0f32; QK_K / 32];
    let (mut max_scale, mut max_min) = (0f32, 0f32);
    for (j, (x, l)) in x.chunks_exact(32).zip(l.chunks_exact_mut(32)).enumerate() {
        let sum_x2 = x.iter().fold(0f32, |s, v| s + v * v);
        let av_x = (sum_x2 / 32.0).sqrt();
        for (w, v) in weights.iter_mut().zip(x) {
            *w = av_x + v.abs();
        }
        (scales[j], mins[j]) = make_qkx2_quants(15, x, &weights, l, &mut laux, -1.0, 0.1, 20);
        max_scale = max_scale.max(scales[j]);
        max_min = max_min.max(mins[j]);
    }

    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut y = [0u8; 144];
    // Packing as get_scale_min_k4 unpacks it: sub-blocks 0..4 keep 6 bits in
    // bytes 0..8, sub-blocks 4..8 keep their low nibbles in bytes 8..12 and
    // their top two bits in the spare top bits of bytes 0..8.
    let packed = &mut y[4..16];
    for j in 0..QK_K / 32 {
        // `as u8` wraps like ggml's uint8_t store; only a negative scale could wrap.
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
        if j < 4 {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = (ls & 0x0F) | ((lm & 0x0F) << 4);
            packed[j - 4] |= (ls >> 4) << 6;
            packed[j] |= (lm >> 4) << 6;
        }
    }
    y[..2].copy_from_slice(&f16_bytes(max_scale / 63.0));
    y[2..4].copy_from_slice(&f16_bytes(max_min / 63.0));

    let d = f16::from_le_bytes([y[0], y[1]]).to_f32();
    let dmin = f16::from_le_bytes([y[2], y[3]]).to_f32();
    for j in 0..QK_K / 32 {
        let (sc, m) = get_scale_min_k4(j, &y[4..16]);
        let dl = d * f32::from(sc);
        if dl == 0.0 {
            continue;
        }
        let ml = dmin * f32::from(m);
        for i in 32 * j..32 * j + 32 {
            l[i] = nearest_int((x[i] + ml) / dl).clamp(0, 15) as u8;
        }
    }

    // Each 32 bytes hold two sub-blocks: the first in the low nibbles.
    for (c, q) in y[16..].chunks_exact_mut(32).enumerate() {
        for (i, q) in q.iter_mut().enumerate() {
            *q = l[64 * c + i] | (l[64 * c + 32 + i] << 4);
        }
    }
    y
}

/// Symmetric fit `x[i] ≈ scale * (l[i] - nmax)` with `l[i]` in `0..2 * nmax`,
/// weighting each value by `x²` (ggml's `make_qx_quants` with `rmse_type` 1 and
/// no importance weights): starting from the scale that maps the value of
/// largest magnitude to `-nmax`, it tries 18 nearby grid densities, refits the
/// scale of each rounding by weighted least squares and keeps the best.
fn make_qx_quants(nmax: i32, x: &[f32], l: &mut [u8]) -> f32 {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l.fill(0);
        return 0.0;
    }
    let quant = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);
    // Weighted sums Σ w·x·l and Σ w·l² for the rounding at `iscale`.
    let sums = |iscale: f32| {
        let (mut sumlx, mut suml2) = (0f32, 0f32);
        for &v in x {
            let q = quant(iscale, v) as f32;
            let w = v * v;
            sumlx += w * v * q;
            suml2 += w * q * q;
        }
        (sumlx, suml2)
    };
    let store = |iscale: f32, l: &mut [u8]| {
        for (l, &v) in l.iter_mut().zip(x) {
            *l = (nmax + quant(iscale, v)) as u8;
        }
    };

    let iscale = -(nmax as f32) / max;
    store(iscale, l);
    let (sumlx, suml2) = sums(iscale);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in (-9..=9).filter(|&is| is != 0) {
        let iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        let (sumlx, suml2) = sums(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            store(iscale, l);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// Q6_K: sixteen sub-blocks of 16 fitted by `make_qx_quants`; their scales are
/// quantised to int8 against the one of largest magnitude (which maps to -128),
/// and the weights re-quantised to 6 bits against those.
fn q6_k(x: &[f32; QK_K]) -> [u8; 210] {
    let mut l = [0u8; QK_K];
    let mut scales = [0f32; QK_K / 16];
    let (mut max_scale, mut max_abs_scale) = (0f32, 0f32);
    for (ib, (x, l)) in x.chunks_exact(16).zip(l.chunks_exact_mut(16)).enumerate() {
        scales[ib] = make_qx_quants(32, x, l);
        if scales[ib].abs() > max_abs_scale {
            max_abs_scale = scales[ib].abs();
            max_scale = scales[ib];
        }
    }
    let mut y = [0u8; 210];
    if max_abs_scale < GROUP_MAX_EPS {
        return y;
    }

    let iscale = -128.0 / max_scale;
    y[208..].copy_from_slice(&f16_bytes(1.0 / iscale));
    let d = f16::from_le_bytes([y[208], y[209]]).to_f32();
    for (s, &scale) in y[192..208].iter_mut().zip(&scales) {
        *s = nearest_int(iscale * scale).min(127) as i8 as u8;
    }
    for j in 0..QK_K / 16 {
        let dl = d * f32::from(y[192 + j] as i8);
        if dl == 0.0 {
            continue;
        }
        for i in 16 * j..16 * j + 16 {
            l[i] = (nearest_int(x[i] / dl).clamp(-32, 31) + 32) as u8;
        }
    }

    // The layout dequant::q6_k reads: per 128 weights, 64 bytes of low nibbles
    // (quarters 0 and 1 in the low halves, 2 and 3 in the high) and 32 bytes of
    // high bit pairs (quarter k in bits 2k..2k+2).
    let (ql, qh) = y[..192].split_at_mut(128);
    for (half, (ql, qh)) in ql
        .chunks_exact_mut(64)
        .zip(qh.chunks_exact_mut(32))
        .enumerate()
    {
        let l = &l[128 * half..128 * half + 128];
        for i in 0..32 {
            let q = [l[i], l[i + 32], l[i + 64], l[i + 96]];
            ql[i] = (q[0] & 0x0F) | ((q[2] & 0x0F) << 4);
            ql[i + 32] = (q[1] & 0x0F) | ((q[3] & 0x0F) << 4);
            qh[i] = (q[0] >> 4) | ((q[1] >> 4) << 2) | ((q[2] >> 4) << 4) | ((q[3] >> 4) << 6);
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::dequant::dequantize;

    fn round_trip(ty: GgmlType, x: &[f32]) -> Vec<f32> {
        let mut q = Vec::new();
        quantize(ty, x, &mut q).unwrap();
        assert_eq!(q.len(), x.len() / ty.block_size() * ty.block_bytes());
        let mut y = vec![0f32; x.len()];
        dequantize(ty, &q, &mut y).unwrap();
        y
    }

    /// ggml's tests/test-quantize-fns.cpp `generate_data`: 0.1 + 2 cos(i + offset),
    /// the cosine in f32 and the sum in f64.
    fn ggml_test_data(offset: f32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (0.1 + f64::from(2.0 * (i as f32 + offset).cos())) as f32)
            .collect()
    }

    /// test-quantize-fns.cpp's `array_rmse`, which (despite the name) is
    /// sqrt(Σ diff²) / n.
    fn ggml_array_rmse(a: &[f32], b: &[f32]) -> f32 {
        let sum: f64 = a
            .iter()
            .zip(b)
            .map(|(&a, &b)| f64::from(a - b).powi(2))
            .sum();
        sum.sqrt() as f32 / a.len() as f32
    }

    #[test]
    fn round_trip_error_is_within_ggml_bounds() {
        // test-quantize-fns.cpp: 32 * 128 values, MAX_QUANTIZATION_TOTAL_ERROR
        // for all four types.
        const TEST_SIZE: usize = 32 * 128;
        const MAX_QUANTIZATION_TOTAL_ERROR: f32 = 0.002;
        let x = ggml_test_data(0.0, TEST_SIZE);
        for ty in QUANTIZE_TYPES {
            let err = ggml_array_rmse(&x, &round_trip(ty, &x));
            assert!(err < MAX_QUANTIZATION_TOTAL_ERROR, "{ty}: error {err}");
        }
    }

    #[test]
    fn round_trip_on_other_data_is_accurate() {
        // Relative RMS error on a few scales of a differently shaped signal;
        // the bounds are generous multiples of what each bit width gives.
        for (ty, bound) in [
            (GgmlType::Q8_0, 0.01),
            (GgmlType::Q4_0, 0.15),
            (GgmlType::Q4K, 0.12),
            (GgmlType::Q6K, 0.03),
        ] {
            for amp in [1e-2f32, 1.0, 3e3] {
                let x: Vec<f32> = (0..4 * QK_K)
                    .map(|i| amp * ((i as f32 * 0.37).sin() + 0.3 * (i as f32 * 1.71).cos()))
                    .collect();
                let y = round_trip(ty, &x);
                let num: f32 = x.iter().zip(&y).map(|(a, b)| (a - b) * (a - b)).sum();
                let den: f32 = x.iter().map(|a| a * a).sum();
                let rel = (num / den).sqrt();
                assert!(rel < bound, "{ty} at amplitude {amp}: relative error {rel}");
            }
        }
    }

    #[test]
    fn zeros_round_trip_to_zeros() {
        let x = vec![0f32; 2 * QK_K];
        for ty in QUANTIZE_TYPES {
            assert!(round_trip(ty, &x).iter().all(|&v| v == 0.0), "{ty}");
        }
    }

    #[test]
    fn q8_0_represents_small_integers_exactly() {
        // With 127 in every block d is exactly 1, so integers come back unchanged.
        let x: Vec<f32> = (0..8 * 32)
            .map(|i| match i % 32 {
                5 => 127.0,
                _ => ((i * 89 + 7) % 255) as f32 - 127.0,
            })
            .collect();
        let y = round_trip(GgmlType::Q8_0, &x);
        for (i, (a, b)) in x.iter().zip(&y).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "index {i}");
        }
    }

    #[test]
    fn unsupported_type_is_an_error() {
        let mut dst = vec![1, 2, 3];
        for ty in GgmlType::ALL {
            let res = quantize(ty, &[0.0; QK_K], &mut dst);
            if QUANTIZE_TYPES.contains(&ty) {
                assert_eq!(res, Ok(()));
            } else {
                assert_eq!(res, Err(QuantizeError::Unsupported(ty)));
            }
        }
        assert_eq!(&dst[..3], &[1, 2, 3]);
    }

    #[test]
    fn partial_block_is_an_error_and_leaves_dst_alone() {
        let mut dst = vec![7u8; 5];
        for ty in QUANTIZE_TYPES {
            let n = ty.block_size() + 1;
            let err = quantize(ty, &vec![1.0; n], &mut dst).unwrap_err();
            assert_eq!(
                err,
                QuantizeError::PartialBlock {
                    ty,
                    len: n,
                    block_size: ty.block_size()
                }
            );
            assert!(err.to_string().contains(ty.name()), "{err}");
        }
        assert_eq!(dst, vec![7u8; 5]);
    }

    #[test]
    fn quantize_appends() {
        let x = ggml_test_data(1.0, 2 * QK_K);
        for ty in QUANTIZE_TYPES {
            let mut all = Vec::new();
            quantize(ty, &x, &mut all).unwrap();
            let mut parts = Vec::new();
            for half in x.chunks(QK_K) {
                quantize(ty, half, &mut parts).unwrap();
            }
            assert_eq!(all, parts, "{ty}");
        }
    }
}
