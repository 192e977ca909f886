//! Dot products of an f32 vector with one quantised weight row, computed block by
//! block without writing the dequantised weights anywhere: the decode hot path.
//!
//! Each block's sum factors into its scale times a sum over small integers (plus,
//! for types with a minimum, the minimum times the sum of `x` over the block), so the
//! inner loops are plain multiply-adds that vectorise. Types without a fast path
//! dequantise one block to the stack and take the dot product of that.

use half::f16;

use super::kernels::dot;
use crate::gguf::dequant::{dequantize_block, get_scale_min_k4 as scale_min_k4};
use crate::gguf::GgmlType;

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// `Σ x[i] · w[i]` for one weight row of type `ty` (whole blocks) and `x` of the same length.
pub fn dot_row(ty: GgmlType, row: &[u8], x: &[f32]) -> f32 {
    match ty {
        GgmlType::Q4_0 => q4_0(row, x),
        GgmlType::Q4_1 => q4_1(row, x),
        GgmlType::Q5_0 => q5_0(row, x),
        GgmlType::Q8_0 => q8_0(row, x),
        GgmlType::Q4K => q4_k(row, x),
        GgmlType::Q6K => q6_k(row, x),
        _ => {
            let bs = ty.block_size();
            let mut w = [0f32; 256];
            row.chunks_exact(ty.block_bytes())
                .zip(x.chunks_exact(bs))
                .map(|(b, x)| {
                    dequantize_block(ty, b, &mut w[..bs]);
                    dot(&w[..bs], x)
                })
                .sum()
        }
    }
}

// The fast paths keep one accumulator per lane across all blocks of the row and sum
// the lanes once at the end; fixed-size blocks (`as_chunks`) let the loops vectorise.

fn blocks<'a, const B: usize, const N: usize>(
    row: &'a [u8],
    x: &'a [f32],
) -> impl Iterator<Item = (&'a [u8; B], &'a [f32; N])> {
    row.as_chunks::<B>().0.iter().zip(x.as_chunks::<N>().0)
}

fn q4_0(row: &[u8], x: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    for (b, x) in blocks::<18, 32>(row, x) {
        let d = f16_at(b, 0);
        for j in 0..16 {
            let q = b[2 + j];
            let (lo, hi) = ((q & 0x0F) as f32 - 8.0, (q >> 4) as f32 - 8.0);
            acc[j] += d * (x[j] * lo + x[j + 16] * hi);
        }
    }
    acc.iter().sum()
}

fn q4_1(row: &[u8], x: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    for (b, x) in blocks::<20, 32>(row, x) {
        let (d, m) = (f16_at(b, 0), f16_at(b, 2));
        for j in 0..16 {
            let q = b[4 + j];
            let (lo, hi) = ((q & 0x0F) as f32, (q >> 4) as f32);
            acc[j] += d * (x[j] * lo + x[j + 16] * hi) + m * (x[j] + x[j + 16]);
        }
    }
    acc.iter().sum()
}

fn q5_0(row: &[u8], x: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    for (b, x) in blocks::<22, 32>(row, x) {
        let d = f16_at(b, 0);
        let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
        for j in 0..16 {
            let q = b[6 + j];
            let lo = (q & 0x0F) as u32 | ((qh >> j) & 1) << 4;
            let hi = (q >> 4) as u32 | ((qh >> (j + 16)) & 1) << 4;
            acc[j] += d * (x[j] * (lo as f32 - 16.0) + x[j + 16] * (hi as f32 - 16.0));
        }
    }
    acc.iter().sum()
}

fn q8_0(row: &[u8], x: &[f32]) -> f32 {
    let mut acc = [0f32; 32];
    for (b, x) in blocks::<34, 32>(row, x) {
        let d = f16_at(b, 0);
        for j in 0..32 {
            acc[j] += d * (x[j] * (b[2 + j] as i8) as f32);
        }
    }
    acc.iter().sum()
}

fn q4_k(row: &[u8], x: &[f32]) -> f32 {
    let mut acc = [0f32; 32];
    for (b, x) in blocks::<144, 256>(row, x) {
        let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
        let scales = &b[4..16];
        for pair in 0..4 {
            let (sc0, m0) = scale_min_k4(2 * pair, scales);
            let (sc1, m1) = scale_min_k4(2 * pair + 1, scales);
            let (d0, d1) = (d * sc0 as f32, d * sc1 as f32);
            let (m0, m1) = (dmin * m0 as f32, dmin * m1 as f32);
            for l in 0..32 {
                let q = b[16 + pair * 32 + l];
                let w0 = d0 * (q & 0x0F) as f32 - m0;
                let w1 = d1 * (q >> 4) as f32 - m1;
                acc[l] += x[pair * 64 + l] * w0 + x[pair * 64 + 32 + l] * w1;
            }
        }
    }
    acc.iter().sum()
}

fn q6_k(row: &[u8], x: &[f32]) -> f32 {
    let mut acc = [0f32; 32];
    for (b, x) in blocks::<210, 256>(row, x) {
        let d = f16_at(b, 208);
        for half in 0..2 {
            // Weight l + 32k of this half is in group 8·half + 2k (l < 16) or + 1.
            let scale = |k: usize, l: usize| d * (b[192 + half * 8 + 2 * k + l / 16] as i8) as f32;
            for l in 0..32 {
                let (lo0, lo1, h) = (
                    b[half * 64 + l],
                    b[half * 64 + 32 + l],
                    b[128 + half * 32 + l],
                );
                let q = [
                    (lo0 & 0x0F) | ((h & 3) << 4),
                    (lo1 & 0x0F) | (((h >> 2) & 3) << 4),
                    (lo0 >> 4) | (((h >> 4) & 3) << 4),
                    (lo1 >> 4) | (((h >> 6) & 3) << 4),
                ];
                for (k, q) in q.into_iter().enumerate() {
                    acc[l] += x[half * 128 + 32 * k + l] * scale(k, l) * (q as f32 - 32.0);
                }
            }
        }
    }
    acc.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::dequant::dequantize;
    use crate::synth::{fill_random, SplitMix64};

    #[test]
    fn every_type_agrees_with_dequantise_then_dot() {
        let mut rng = SplitMix64::new(3);
        for ty in GgmlType::ALL {
            let n = 8 * 256;
            let mut row = vec![0u8; n / ty.block_size() * ty.block_bytes()];
            fill_random(ty, &mut row, &mut rng);
            let x: Vec<f32> = (0..n).map(|_| rng.signed_unit()).collect();
            let mut w = vec![0f32; n];
            dequantize(ty, &row, &mut w).unwrap();
            let expected: f64 = w.iter().zip(&x).map(|(a, b)| *a as f64 * *b as f64).sum();
            let scale: f64 = w
                .iter()
                .zip(&x)
                .map(|(a, b)| (*a as f64 * *b as f64).abs())
                .sum();
            let got = dot_row(ty, &row, &x) as f64;
            assert!(
                (got - expected).abs() <= 1e-5 * scale,
                "{ty}: {got} vs {expected}"
            );
        }
    }
}
