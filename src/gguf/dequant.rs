//! CPU dequantisation of every supported type to f32.
//!
//! Each block-quantised type has one function that dequantises one block, typed
//! by fixed-size arrays whose lengths the dispatch takes from the type table, so
//! a layout that disagrees with [`GgmlType::layout`] does not compile. The arithmetic follows
//! ggml's `dequantize_row_*` operation for operation (same products in the same
//! order, no fused multiply-add), so results are bit-identical to ggml's reference
//! code evaluated without FMA contraction, and to the `gguf` Python package's.

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use thiserror::Error;

use super::types::{GgmlType, QK_K};

/// Why a buffer could not be dequantised.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DequantError {
    #[error("{ty}: {len} bytes is not a whole number of {block_bytes}-byte blocks")]
    PartialBlock {
        ty: GgmlType,
        len: usize,
        block_bytes: usize,
    },
    #[error("{ty}: {blocks} blocks hold {expected} values but the destination has {got}")]
    DstLength {
        ty: GgmlType,
        blocks: usize,
        expected: usize,
        got: usize,
    },
}

/// Dequantises `src`, a whole number of `ty` blocks, into `dst`, which must hold
/// exactly the number of weights those blocks encode.
pub fn dequantize(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), DequantError> {
    let block_bytes = ty.block_bytes();
    if !src.len().is_multiple_of(block_bytes) {
        return Err(DequantError::PartialBlock {
            ty,
            len: src.len(),
            block_bytes,
        });
    }
    let blocks = src.len() / block_bytes;
    let expected = blocks * ty.block_size();
    if dst.len() != expected {
        return Err(DequantError::DstLength {
            ty,
            blocks,
            expected,
            got: dst.len(),
        });
    }
    dequantize_blocks(ty, src, dst);
    Ok(())
}

/// Dequantises one block: `block.len()` must be `ty.block_bytes()` and `out.len()`
/// `ty.block_size()`. With other lengths it writes only the whole blocks that fit.
#[inline]
pub fn dequantize_block(ty: GgmlType, block: &[u8], out: &mut [f32]) {
    debug_assert_eq!(block.len(), ty.block_bytes(), "{ty} block length");
    debug_assert_eq!(out.len(), ty.block_size(), "{ty} output length");
    dequantize_blocks(ty, block, out);
}

/// Calls `f` on each pair of (block, output) in `src`/`dst`, as fixed-size arrays.
#[inline(always)]
fn each_block<const BYTES: usize, const N: usize>(
    src: &[u8],
    dst: &mut [f32],
    f: impl Fn(&[u8; BYTES], &mut [f32; N]),
) {
    for (x, y) in src.chunks_exact(BYTES).zip(dst.chunks_exact_mut(N)) {
        // chunks_exact yields exactly BYTES and N elements: the conversions always succeed.
        if let (Ok(x), Ok(y)) = (x.try_into(), y.try_into()) {
            f(x, y);
        }
    }
}

/// Dispatches on `ty` once, then runs that type's block function over every block.
#[inline]
fn dequantize_blocks(ty: GgmlType, src: &[u8], dst: &mut [f32]) {
    macro_rules! blocks {
        ($ty:ident, $f:expr) => {
            each_block::<{ GgmlType::$ty.block_bytes() }, { GgmlType::$ty.block_size() }>(
                src, dst, $f,
            )
        };
    }
    match ty {
        GgmlType::F32 => blocks!(F32, |x, y| y[0] = f32::from_le_bytes(*x)),
        GgmlType::F16 => f16_row(src, dst),
        GgmlType::BF16 => blocks!(BF16, |x, y| y[0] = bf16::from_le_bytes(*x).to_f32()),
        GgmlType::Q4_0 => blocks!(Q4_0, q4_0),
        GgmlType::Q4_1 => blocks!(Q4_1, q4_1),
        GgmlType::Q5_0 => blocks!(Q5_0, q5_0),
        GgmlType::Q5_1 => blocks!(Q5_1, q5_1),
        GgmlType::Q8_0 => blocks!(Q8_0, q8_0),
        GgmlType::Q2K => blocks!(Q2K, q2_k),
        GgmlType::Q3K => blocks!(Q3K, q3_k),
        GgmlType::Q4K => blocks!(Q4K, q4_k),
        GgmlType::Q5K => blocks!(Q5K, q5_k),
        GgmlType::Q6K => blocks!(Q6K, q6_k),
        GgmlType::IQ4NL => blocks!(IQ4NL, iq4_nl),
        GgmlType::IQ4XS => blocks!(IQ4XS, iq4_xs),
    }
}

/// f16 to f32, in chunks through half's slice conversion, which uses the CPU's
/// conversion instructions where it has them (the element-wise one cannot be
/// vectorised), staged through an aligned buffer since `src` is bytes.
fn f16_row(src: &[u8], dst: &mut [f32]) {
    const CHUNK: usize = 64;
    let (mut src, mut dst) = (src, dst);
    if dst.len() >= CHUNK {
        let mut buf = [f16::ZERO; CHUNK];
        let mut x = src.chunks_exact(2 * CHUNK);
        let mut y = dst.chunks_exact_mut(CHUNK);
        for (x, y) in (&mut x).zip(&mut y) {
            for (h, b) in buf.iter_mut().zip(x.chunks_exact(2)) {
                *h = f16::from_le_bytes([b[0], b[1]]);
            }
            buf.convert_to_f32_slice(y);
        }
        (src, dst) = (x.remainder(), y.into_remainder());
    }
    for (b, y) in src.chunks_exact(2).zip(dst) {
        *y = f16::from_le_bytes([b[0], b[1]]).to_f32();
    }
}

#[inline(always)]
fn f16_at(x: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([x[at], x[at + 1]]).to_f32()
}

// ---- 32-weight blocks: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 -------------------------

/// The quants of a 32-weight block: byte j of `qs` holds weight j in its low
/// nibble and weight j + 16 in its high one; bit i of `qh` is weight i's fifth
/// bit (0 for the 4-bit types).
#[inline(always)]
fn legacy_quants(qs: &[u8], qh: u32) -> [u8; 32] {
    let mut q = [0u8; 32];
    for j in 0..16 {
        let hi0 = ((qh >> j) & 1) as u8;
        let hi1 = ((qh >> (j + 16)) & 1) as u8;
        q[j] = (qs[j] & 0x0F) | (hi0 << 4);
        q[j + 16] = (qs[j] >> 4) | (hi1 << 4);
    }
    q
}

/// `d * (q - offset)`, the symmetric types.
#[inline(always)]
fn scale_offset(q: &[u8; 32], d: f32, offset: i32, y: &mut [f32; 32]) {
    for (y, &q) in y.iter_mut().zip(q) {
        *y = (i32::from(q) - offset) as f32 * d;
    }
}

/// `d * q + m`, the types with a stored minimum.
#[inline(always)]
fn scale_min(q: &[u8; 32], d: f32, m: f32, y: &mut [f32; 32]) {
    for (y, &q) in y.iter_mut().zip(q) {
        *y = f32::from(q) * d + m;
    }
}

// Layout: d: f16, qs: [u8; 16].
fn q4_0(x: &[u8; 18], y: &mut [f32; 32]) {
    scale_offset(&legacy_quants(&x[2..], 0), f16_at(x, 0), 8, y);
}

// Layout: d: f16, m: f16, qs: [u8; 16].
fn q4_1(x: &[u8; 20], y: &mut [f32; 32]) {
    scale_min(&legacy_quants(&x[4..], 0), f16_at(x, 0), f16_at(x, 2), y);
}

// Layout: d: f16, qh: [u8; 4], qs: [u8; 16].
fn q5_0(x: &[u8; 22], y: &mut [f32; 32]) {
    let qh = u32::from_le_bytes([x[2], x[3], x[4], x[5]]);
    scale_offset(&legacy_quants(&x[6..], qh), f16_at(x, 0), 16, y);
}

// Layout: d: f16, m: f16, qh: [u8; 4], qs: [u8; 16].
fn q5_1(x: &[u8; 24], y: &mut [f32; 32]) {
    let qh = u32::from_le_bytes([x[4], x[5], x[6], x[7]]);
    scale_min(&legacy_quants(&x[8..], qh), f16_at(x, 0), f16_at(x, 2), y);
}

// Layout: d: f16, qs: [i8; 32].
fn q8_0(x: &[u8; 34], y: &mut [f32; 32]) {
    let d = f16_at(x, 0);
    for (y, &q) in y.iter_mut().zip(&x[2..]) {
        *y = f32::from(q as i8) * d;
    }
}

// ---- k-quants: 256-weight super-blocks -------------------------------------

/// Q2_K and Q3_K keep four 2-bit planes per 32 bytes of `qs`. For the group of
/// 16 weights `g` (0..16) this returns the offset of its 16 bytes in `qs` and
/// the shift of its plane.
#[inline(always)]
fn two_bit_group(g: usize) -> (usize, usize) {
    (32 * (g / 8) + 16 * (g % 2), 2 * ((g % 8) / 2))
}

// Layout: scales: [u8; 16] (low nibble scale, high nibble min), qs: [u8; 64], d: f16, dmin: f16.
fn q2_k(x: &[u8; 84], y: &mut [f32; QK_K]) {
    let (scales, qs) = (&x[..16], &x[16..80]);
    let d = f16_at(x, 80);
    let dmin = f16_at(x, 82);
    for (g, y) in y.chunks_exact_mut(16).enumerate() {
        let dl = d * f32::from(scales[g] & 0x0F);
        let ml = dmin * f32::from(scales[g] >> 4);
        let (at, shift) = two_bit_group(g);
        for (y, &q) in y.iter_mut().zip(&qs[at..at + 16]) {
            *y = dl * f32::from((q >> shift) & 3) - ml;
        }
    }
}

/// The sixteen 6-bit Q3_K scales: low nibbles in bytes 0..8 (weights' groups
/// 0..8 low, 8..16 high), top two bits in bytes 8..12.
#[inline(always)]
fn q3_k_scale(scales: &[u8], g: usize) -> i32 {
    let lo = (scales[g % 8] >> (4 * (g / 8))) & 0x0F;
    let hi = (scales[8 + g % 4] >> (2 * (g / 4))) & 3;
    i32::from(lo | (hi << 4)) - 32
}

// Layout: hmask: [u8; 32], qs: [u8; 64], scales: [u8; 12], d: f16.
fn q3_k(x: &[u8; 110], y: &mut [f32; QK_K]) {
    let (hmask, qs, scales) = (&x[..32], &x[32..96], &x[96..108]);
    let d = f16_at(x, 108);
    for (g, y) in y.chunks_exact_mut(16).enumerate() {
        let dl = d * q3_k_scale(scales, g) as f32;
        let (at, shift) = two_bit_group(g);
        // The high bit of group g sits in bit `plane` of hmask, which ggml
        // reads as "subtract 4 unless set".
        let plane = 4 * (g / 8) + shift / 2;
        let hm = &hmask[16 * (g % 2)..16 * (g % 2) + 16];
        for ((y, &q), &h) in y.iter_mut().zip(&qs[at..at + 16]).zip(hm) {
            let q = i32::from((q >> shift) & 3) - if (h >> plane) & 1 != 0 { 0 } else { 4 };
            *y = dl * q as f32;
        }
    }
}

/// Scale and min of sub-block `j` (0..8) from the 12 packed bytes of Q4_K/Q5_K:
/// 6 bits each, the first four whole in bytes 0..8, the last four split
/// between the low/high nibbles of bytes 8..12 and the top bits of bytes 0..8.
#[inline(always)]
pub(crate) fn get_scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Q4_K and Q5_K: eight sub-blocks of 32 weights, `d * sc * q - dmin * m`.
/// Sub-block s takes nibble s % 2 of `qs[32 * (s / 2)..][..32]`; `high(s, l)`
/// supplies the fifth bit (already shifted) of weight l of sub-block s.
#[inline(always)]
fn k_quant_with_mins(
    d: f32,
    dmin: f32,
    scales: &[u8],
    qs: &[u8],
    y: &mut [f32; QK_K],
    high: impl Fn(usize, usize) -> u8,
) {
    for (s, y) in y.chunks_exact_mut(32).enumerate() {
        let (sc, m) = get_scale_min_k4(s, scales);
        let dl = d * f32::from(sc);
        let ml = dmin * f32::from(m);
        let shift = 4 * (s % 2);
        let q = &qs[32 * (s / 2)..32 * (s / 2) + 32];
        for (l, (y, &q)) in y.iter_mut().zip(q).enumerate() {
            *y = dl * f32::from(((q >> shift) & 0x0F) | high(s, l)) - ml;
        }
    }
}

// Layout: d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128].
fn q4_k(x: &[u8; 144], y: &mut [f32; QK_K]) {
    k_quant_with_mins(f16_at(x, 0), f16_at(x, 2), &x[4..16], &x[16..], y, |_, _| 0);
}

// Layout: d: f16, dmin: f16, scales: [u8; 12], qh: [u8; 32], qs: [u8; 128].
fn q5_k(x: &[u8; 176], y: &mut [f32; QK_K]) {
    let qh = &x[16..48];
    k_quant_with_mins(
        f16_at(x, 0),
        f16_at(x, 2),
        &x[4..16],
        &x[48..],
        y,
        |s, l| ((qh[l] >> s) & 1) << 4,
    );
}

// Layout: ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16.
fn q6_k(x: &[u8; 210], y: &mut [f32; QK_K]) {
    let (ql, qh, scales) = (&x[..128], &x[128..192], &x[192..208]);
    let d = f16_at(x, 208);
    // Each half of 128 weights has 64 bytes of low nibbles and 32 of high bit
    // pairs; its quarter k takes nibble k / 2 of ql[32 * (k % 2)..] and bits
    // 2k..2k+2 of qh.
    for (i, y) in y.chunks_exact_mut(32).enumerate() {
        let (half, k) = (i / 4, i % 4);
        let lo = &ql[64 * half + 32 * (k % 2)..][..32];
        let hi = &qh[32 * half..][..32];
        for (l, (y, (&lo, &hi))) in y.iter_mut().zip(lo.iter().zip(hi)).enumerate() {
            let q = ((lo >> (4 * (k / 2))) & 0x0F) | (((hi >> (2 * k)) & 3) << 4);
            let sc = scales[2 * i + l / 16] as i8;
            *y = d * f32::from(sc) * f32::from(q as i8 - 32);
        }
    }
}

// ---- non-linear 4-bit: IQ4_NL, IQ4_XS ---------------------------------------

/// The 16 levels IQ4_NL and IQ4_XS index with their 4-bit quants.
const KVALUES_IQ4NL: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// 32 weights from 16 bytes, low nibbles first, each `d * KVALUES_IQ4NL[q]`.
#[inline(always)]
fn iq4_32(qs: &[u8], d: f32, y: &mut [f32]) {
    let (lo, hi) = y.split_at_mut(16);
    for ((lo, hi), &q) in lo.iter_mut().zip(hi).zip(qs) {
        *lo = d * f32::from(KVALUES_IQ4NL[usize::from(q & 0x0F)]);
        *hi = d * f32::from(KVALUES_IQ4NL[usize::from(q >> 4)]);
    }
}

// Layout: d: f16, qs: [u8; 16].
fn iq4_nl(x: &[u8; 18], y: &mut [f32; 32]) {
    iq4_32(&x[2..], f16_at(x, 0), y);
}

// Layout: d: f16, scales_h: u16, scales_l: [u8; 4], qs: [u8; 128].
fn iq4_xs(x: &[u8; 136], y: &mut [f32; QK_K]) {
    let d = f16_at(x, 0);
    let scales_h = u16::from_le_bytes([x[2], x[3]]);
    let (scales_l, qs) = (&x[4..8], &x[8..]);
    for (ib, y) in y.chunks_exact_mut(32).enumerate() {
        let lo = (scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0F;
        let hi = ((scales_h >> (2 * ib)) & 3) as u8;
        let dl = d * (i32::from(lo | (hi << 4)) - 32) as f32;
        iq4_32(&qs[16 * ib..16 * ib + 16], dl, y);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_block_is_an_error() {
        let src = [0u8; 18 + 5];
        let mut dst = [0f32; 64];
        let err = dequantize(GgmlType::Q4_0, &src, &mut dst).unwrap_err();
        assert_eq!(
            err,
            DequantError::PartialBlock {
                ty: GgmlType::Q4_0,
                len: 23,
                block_bytes: 18
            }
        );
        assert!(err.to_string().contains("Q4_0"), "{err}");
        // F32 has 4-byte "blocks": 6 bytes is not a whole number of floats.
        assert!(dequantize(GgmlType::F32, &[0; 6], &mut [0.0; 1]).is_err());
    }

    #[test]
    fn wrong_dst_length_is_an_error() {
        let src = vec![0u8; 2 * GgmlType::Q6K.block_bytes()];
        for len in [0, QK_K, 2 * QK_K - 1, 2 * QK_K + 1, 3 * QK_K] {
            let mut dst = vec![0f32; len];
            assert_eq!(
                dequantize(GgmlType::Q6K, &src, &mut dst),
                Err(DequantError::DstLength {
                    ty: GgmlType::Q6K,
                    blocks: 2,
                    expected: 2 * QK_K,
                    got: len
                })
            );
        }
        let mut dst = vec![0f32; 2 * QK_K];
        assert_eq!(dequantize(GgmlType::Q6K, &src, &mut dst), Ok(()));
    }

    #[test]
    fn empty_input_is_fine() {
        for ty in GgmlType::ALL {
            assert_eq!(dequantize(ty, &[], &mut []), Ok(()), "{ty}");
        }
    }

    #[test]
    fn block_and_buffer_agree() {
        // dequantize_block over each block equals dequantize over the buffer.
        for ty in GgmlType::ALL {
            let (bytes, n) = (ty.block_bytes(), ty.block_size());
            let src: Vec<u8> = (0..3 * bytes)
                .map(|i| (i * 37 % 251) as u8 & 0x3B)
                .collect();
            let mut whole = vec![0f32; 3 * n];
            dequantize(ty, &src, &mut whole).unwrap();
            for (b, expected) in src.chunks(bytes).zip(whole.chunks(n)) {
                let mut out = vec![0f32; n];
                dequantize_block(ty, b, &mut out);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&out), bits(expected), "{ty}");
            }
        }
    }

    #[test]
    fn f16_chunked_and_scalar_paths_agree() {
        // Every f16 bit pattern but NaNs (whose payload handling may differ):
        // the chunked conversion, the scalar tail and half's own must agree.
        let bits: Vec<u16> = (0..=u16::MAX)
            .filter(|b| !f16::from_bits(*b).is_nan())
            .collect();
        let src: Vec<u8> = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
        let mut whole = vec![0f32; bits.len()];
        dequantize(GgmlType::F16, &src, &mut whole).unwrap();
        for (i, (&b, &y)) in bits.iter().zip(&whole).enumerate() {
            let mut one = [0f32];
            dequantize_block(GgmlType::F16, &src[2 * i..2 * i + 2], &mut one);
            let want = f16::from_bits(b).to_f32().to_bits();
            assert_eq!(
                (y.to_bits(), one[0].to_bits()),
                (want, want),
                "f16 {b:#06x}"
            );
        }
    }

    #[test]
    fn q8_0_by_hand() {
        let mut block = [0u8; 34];
        block[..2].copy_from_slice(&f16::from_f32(0.5).to_le_bytes());
        for (j, b) in block[2..].iter_mut().enumerate() {
            *b = (j as i8 - 16) as u8;
        }
        let mut y = [0f32; 32];
        dequantize(GgmlType::Q8_0, &block, &mut y).unwrap();
        for (j, y) in y.iter().enumerate() {
            assert_eq!(*y, (j as f32 - 16.0) * 0.5);
        }
    }
}
