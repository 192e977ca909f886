//! CPU dequantisation of every supported type to f32, bit-exactly as ggml and the
//! `gguf` Python package compute it (the order of float operations matters).

use half::{bf16, f16};

use super::GgmlType;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DequantError {
    #[error("{ty}: {bytes} bytes is not a whole number of {block_bytes}-byte blocks")]
    PartialBlock {
        ty: GgmlType,
        bytes: usize,
        block_bytes: usize,
    },
    #[error("{ty}: {blocks} blocks hold {expected} values, but the output has room for {found}")]
    OutputLength {
        ty: GgmlType,
        blocks: usize,
        expected: usize,
        found: usize,
    },
}

/// Dequantises whole blocks of `ty` from `src` into `dst`, which must hold exactly
/// `src.len() / block_bytes × block_size` values.
pub fn dequantize(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), DequantError> {
    let (bs, bb) = (ty.block_size(), ty.block_bytes());
    if src.len() % bb != 0 {
        return Err(DequantError::PartialBlock {
            ty,
            bytes: src.len(),
            block_bytes: bb,
        });
    }
    let blocks = src.len() / bb;
    if dst.len() != blocks * bs {
        return Err(DequantError::OutputLength {
            ty,
            blocks,
            expected: blocks * bs,
            found: dst.len(),
        });
    }
    for (block, out) in src.chunks_exact(bb).zip(dst.chunks_exact_mut(bs)) {
        dequantize_block(ty, block, out);
    }
    Ok(())
}

/// Dequantises one block: `block` is `ty.block_bytes()` long, `out` `ty.block_size()`.
pub fn dequantize_block(ty: GgmlType, block: &[u8], out: &mut [f32]) {
    debug_assert_eq!(block.len(), ty.block_bytes());
    debug_assert_eq!(out.len(), ty.block_size());
    match ty {
        GgmlType::F32 => out[0] = f32::from_le_bytes([block[0], block[1], block[2], block[3]]),
        GgmlType::F16 => out[0] = f16_at(block, 0),
        GgmlType::BF16 => out[0] = bf16::from_le_bytes([block[0], block[1]]).to_f32(),
        GgmlType::Q4_0 => q4_0(block, out),
        GgmlType::Q4_1 => q4_1(block, out),
        GgmlType::Q5_0 => q5_0(block, out),
        GgmlType::Q5_1 => q5_1(block, out),
        GgmlType::Q8_0 => q8_0(block, out),
        GgmlType::Q2K => q2_k(block, out),
        GgmlType::Q3K => q3_k(block, out),
        GgmlType::Q4K => q4_k(block, out),
        GgmlType::Q5K => q5_k(block, out),
        GgmlType::Q6K => q6_k(block, out),
        GgmlType::IQ4NL => iq4_nl(block, out),
        GgmlType::IQ4XS => iq4_xs(block, out),
    }
}

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// The 32-weight formats store weight j in the low nibble of byte j and weight
/// j + 16 in the high nibble.
fn nibbles(qs: &[u8]) -> impl Iterator<Item = (usize, u8, u8)> + '_ {
    qs.iter().enumerate().map(|(j, q)| (j, q & 0x0F, q >> 4))
}

fn q4_0(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    for (j, lo, hi) in nibbles(&b[2..18]) {
        out[j] = d * (lo as i32 - 8) as f32;
        out[j + 16] = d * (hi as i32 - 8) as f32;
    }
}

fn q4_1(b: &[u8], out: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    for (j, lo, hi) in nibbles(&b[4..20]) {
        out[j] = d * lo as f32 + m;
        out[j + 16] = d * hi as f32 + m;
    }
}

/// Fifth bits of a Q5 block: bit j of `qh` belongs to weight j.
fn fifth_bits(qh: &[u8]) -> u32 {
    u32::from_le_bytes([qh[0], qh[1], qh[2], qh[3]])
}

fn q5_0(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    let qh = fifth_bits(&b[2..6]);
    for (j, lo, hi) in nibbles(&b[6..22]) {
        let lo = lo as u32 | ((qh >> j) & 1) << 4;
        let hi = hi as u32 | ((qh >> (j + 16)) & 1) << 4;
        out[j] = d * (lo as i32 - 16) as f32;
        out[j + 16] = d * (hi as i32 - 16) as f32;
    }
}

fn q5_1(b: &[u8], out: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    let qh = fifth_bits(&b[4..8]);
    for (j, lo, hi) in nibbles(&b[8..24]) {
        let lo = lo as u32 | ((qh >> j) & 1) << 4;
        let hi = hi as u32 | ((qh >> (j + 16)) & 1) << 4;
        out[j] = d * lo as f32 + m;
        out[j + 16] = d * hi as f32 + m;
    }
}

fn q8_0(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    for (o, &q) in out.iter_mut().zip(&b[2..34]) {
        *o = q as i8 as f32 * d;
    }
}

/// Q2_K: 16 groups of 16 weights, each with a 4-bit scale and 4-bit min; 2-bit quants,
/// four to a byte, laid out in two halves of 128 weights.
fn q2_k(b: &[u8], out: &mut [f32]) {
    let (scales, qs) = (&b[0..16], &b[16..80]);
    let (d, dmin) = (f16_at(b, 80), f16_at(b, 82));
    for (group, y) in out.chunks_exact_mut(16).enumerate() {
        let (half, shift_index, upper) = (group / 8, (group % 8) / 2, group % 2);
        let sc = scales[group];
        let dl = d * (sc & 0x0F) as f32;
        let ml = dmin * (sc >> 4) as f32;
        let q = &qs[half * 32 + upper * 16..][..16];
        for (yl, &ql) in y.iter_mut().zip(q) {
            *yl = dl * ((ql >> (2 * shift_index)) & 3) as f32 - ml;
        }
    }
}

/// Q3_K: 16 groups of 16 weights with signed 6-bit scales; 2 low bits per weight in
/// `qs` plus a high bit in `hmask` (a clear high bit means "subtract 4").
fn q3_k(b: &[u8], out: &mut [f32]) {
    let (hmask, qs, packed) = (&b[0..32], &b[32..96], &b[96..108]);
    let d = f16_at(b, 108);
    for (group, y) in out.chunks_exact_mut(16).enumerate() {
        // Low 4 bits: nibbles of bytes 0..8; high 2 bits: 2-bit fields of bytes 8..12.
        let low = (packed[group % 8] >> (4 * (group / 8))) & 0x0F;
        let high = (packed[8 + group % 4] >> (2 * (group / 4))) & 0x03;
        let scale = ((low | high << 4) as i8 - 32) as f32;
        let dl = d * scale;
        let (half, shift_index, upper) = (group / 8, (group % 8) / 2, group % 2);
        let q = &qs[half * 32 + upper * 16..][..16];
        let h = &hmask[upper * 16..][..16];
        let hbit = 4 * half + shift_index;
        for ((yl, &ql), &hl) in y.iter_mut().zip(q).zip(h) {
            let low = ((ql >> (2 * shift_index)) & 3) as i8;
            let offset = if (hl >> hbit) & 1 == 1 { 0 } else { 4 };
            *yl = dl * (low - offset) as f32;
        }
    }
}

/// The 6-bit scale and min of sub-block `j` (0..8) of Q4_K and Q5_K, packed in 12 bytes.
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Q4_K: 8 sub-blocks of 32 with 6-bit scales and mins; 4-bit quants, sub-blocks
/// 2i and 2i+1 sharing the low and high nibbles of 32 bytes.
fn q4_k(b: &[u8], out: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let (scales, qs) = (&b[4..16], &b[16..144]);
    for (sub, y) in out.chunks_exact_mut(32).enumerate() {
        let (sc, m) = scale_min_k4(sub, scales);
        let (dl, ml) = (d * sc as f32, dmin * m as f32);
        let q = &qs[(sub / 2) * 32..][..32];
        let shift = 4 * (sub % 2);
        for (yl, &ql) in y.iter_mut().zip(q) {
            *yl = dl * ((ql >> shift) & 0x0F) as f32 - ml;
        }
    }
}

/// Q5_K: Q4_K plus a fifth bit per weight; bit `sub` of `qh[l]` belongs to weight l
/// of sub-block `sub`.
fn q5_k(b: &[u8], out: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let (scales, qh, qs) = (&b[4..16], &b[16..48], &b[48..176]);
    for (sub, y) in out.chunks_exact_mut(32).enumerate() {
        let (sc, m) = scale_min_k4(sub, scales);
        let (dl, ml) = (d * sc as f32, dmin * m as f32);
        let q = &qs[(sub / 2) * 32..][..32];
        let shift = 4 * (sub % 2);
        for ((yl, &ql), &hl) in y.iter_mut().zip(q).zip(qh) {
            let v = ((ql >> shift) & 0x0F) | (((hl >> sub) & 1) << 4);
            *yl = dl * v as f32 - ml;
        }
    }
}

/// Q6_K: 16 groups of 16 with signed 8-bit scales; 4 low bits in `ql`, 2 high bits in `qh`.
fn q6_k(b: &[u8], out: &mut [f32]) {
    let (ql, qh, scales) = (&b[0..128], &b[128..192], &b[192..208]);
    let d = f16_at(b, 208);
    for half in 0..2 {
        let (ql, qh) = (&ql[half * 64..][..64], &qh[half * 32..][..32]);
        let y = &mut out[half * 128..][..128];
        for l in 0..32 {
            let is = half * 8 + l / 16;
            let h = qh[l];
            let quants = [
                (ql[l] & 0x0F) | ((h & 3) << 4),
                (ql[l + 32] & 0x0F) | (((h >> 2) & 3) << 4),
                (ql[l] >> 4) | (((h >> 4) & 3) << 4),
                (ql[l + 32] >> 4) | (((h >> 6) & 3) << 4),
            ];
            for (k, q) in quants.into_iter().enumerate() {
                let scale = scales[is + 2 * k] as i8 as f32;
                y[l + 32 * k] = (d * scale) * (q as i8 - 32) as f32;
            }
        }
    }
}

/// The non-linear 4-bit levels of IQ4_NL and IQ4_XS.
const IQ4_LEVELS: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

fn iq4_nl(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    for (j, lo, hi) in nibbles(&b[2..18]) {
        out[j] = d * IQ4_LEVELS[lo as usize] as f32;
        out[j + 16] = d * IQ4_LEVELS[hi as usize] as f32;
    }
}

/// IQ4_XS: IQ4_NL's levels in 8 sub-blocks of 32, each with a 6-bit scale (low 4 bits
/// in `scales_l`, high 2 bits in `scales_h`).
fn iq4_xs(b: &[u8], out: &mut [f32]) {
    let d = f16_at(b, 0);
    let scales_h = u16::from_le_bytes([b[2], b[3]]);
    let (scales_l, qs) = (&b[4..8], &b[8..136]);
    for (sub, y) in out.chunks_exact_mut(32).enumerate() {
        let low = (scales_l[sub / 2] >> (4 * (sub % 2))) & 0x0F;
        let high = ((scales_h >> (2 * sub)) & 3) as u8;
        let dl = d * ((low | high << 4) as i8 - 32) as f32;
        for (j, lo, hi) in nibbles(&qs[sub * 16..][..16]) {
            y[j] = dl * IQ4_LEVELS[lo as usize] as f32;
            y[j + 16] = dl * IQ4_LEVELS[hi as usize] as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_blocks_and_wrong_outputs_are_errors() {
        let mut out = vec![0f32; 32];
        let err = dequantize(GgmlType::Q4_0, &[0u8; 17], &mut out).unwrap_err();
        assert!(err
            .to_string()
            .contains("17 bytes is not a whole number of 18-byte blocks"));
        let err = dequantize(GgmlType::Q4_0, &[0u8; 18], &mut out[..31]).unwrap_err();
        assert!(err.to_string().contains("room for 31"));
    }
}
