//! Random tensor data of any type, fast enough to write a 7B model in seconds.
//!
//! Quantised blocks are random bytes whose f16 scale fields are then set to values
//! that put the weights at roughly ±0.05, the magnitude of a trained model's. This is
//! far faster than quantising random floats and just as valid an input for timing.

use half::f16;

use crate::gguf::GgmlType;

/// SplitMix64: tiny, fast and good enough for test data; seeded per chunk so that
/// chunks can be generated in parallel and the result stays deterministic.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in [-1, 1).
    pub fn signed_unit(&mut self) -> f32 {
        2.0 * self.unit() - 1.0
    }

    pub fn fill_bytes(&mut self, out: &mut [u8]) {
        let mut chunks = out.chunks_exact_mut(8);
        for chunk in &mut chunks {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let tail = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        tail.copy_from_slice(&last[..tail.len()]);
    }
}

/// Typical magnitude of a weight.
pub const WEIGHT_SCALE: f32 = 0.05;

/// The f16 fields of a block, as (byte offset, typical value): each type's scale
/// chosen so that scale × the largest quant level is about `WEIGHT_SCALE`, and for
/// types with a per-block minimum, a minimum that centres the weights on zero.
fn scale_fields(ty: GgmlType) -> &'static [(usize, f32)] {
    match ty {
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => &[],
        GgmlType::Q4_0 => &[(0, WEIGHT_SCALE / 8.0)],
        GgmlType::Q4_1 => &[(0, 2.0 * WEIGHT_SCALE / 15.0), (2, -WEIGHT_SCALE)],
        GgmlType::Q5_0 => &[(0, WEIGHT_SCALE / 16.0)],
        GgmlType::Q5_1 => &[(0, 2.0 * WEIGHT_SCALE / 31.0), (2, -WEIGHT_SCALE)],
        GgmlType::Q8_0 => &[(0, WEIGHT_SCALE / 127.0)],
        // d * scale(0..15) * q(0..3) - dmin * min(0..15)
        GgmlType::Q2K => &[(80, WEIGHT_SCALE / 22.5), (82, WEIGHT_SCALE / 15.0)],
        // d * (scale - 32) * (q - 4)
        GgmlType::Q3K => &[(108, WEIGHT_SCALE / 128.0)],
        // d * scale(0..63) * q(0..15) - dmin * min(0..63)
        GgmlType::Q4K => &[(0, WEIGHT_SCALE / 236.0), (2, WEIGHT_SCALE / 31.5)],
        // d * scale(0..63) * q(0..31) - dmin * min(0..63)
        GgmlType::Q5K => &[(0, WEIGHT_SCALE / 488.0), (2, WEIGHT_SCALE / 31.5)],
        // d * scale(-128..127) * (q - 32)
        GgmlType::Q6K => &[(208, WEIGHT_SCALE / 2048.0)],
        // d * table(-127..113)
        GgmlType::IQ4NL => &[(0, WEIGHT_SCALE / 127.0)],
        // d * (scale - 32) * table(-127..113)
        GgmlType::IQ4XS => &[(0, WEIGHT_SCALE / 4064.0)],
    }
}

/// Fills `out` (whole blocks of `ty`) with random weights of sane magnitude.
pub fn fill_random(ty: GgmlType, out: &mut [u8], rng: &mut SplitMix64) {
    match ty {
        GgmlType::F32 => {
            for w in out.chunks_exact_mut(4) {
                w.copy_from_slice(&(WEIGHT_SCALE * rng.signed_unit()).to_le_bytes());
            }
        }
        GgmlType::F16 => {
            for w in out.chunks_exact_mut(2) {
                w.copy_from_slice(&f16::from_f32(WEIGHT_SCALE * rng.signed_unit()).to_le_bytes());
            }
        }
        GgmlType::BF16 => {
            for w in out.chunks_exact_mut(2) {
                let bf = half::bf16::from_f32(WEIGHT_SCALE * rng.signed_unit());
                w.copy_from_slice(&bf.to_le_bytes());
            }
        }
        _ => {
            rng.fill_bytes(out);
            let fields = scale_fields(ty);
            for block in out.chunks_exact_mut(ty.block_bytes()) {
                for &(offset, typical) in fields {
                    let value = f16::from_f32(typical * (0.5 + rng.unit()));
                    block[offset..offset + 2].copy_from_slice(&value.to_le_bytes());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::dequant::dequantize;

    #[test]
    fn every_type_gives_finite_weights_of_sane_magnitude() {
        let mut rng = SplitMix64::new(7);
        for ty in GgmlType::ALL {
            let n_blocks = 64;
            let mut bytes = vec![0u8; n_blocks * ty.block_bytes()];
            fill_random(ty, &mut bytes, &mut rng);
            let mut weights = vec![0f32; n_blocks * ty.block_size()];
            dequantize(ty, &bytes, &mut weights).unwrap();
            let rms = (weights.iter().map(|w| w * w).sum::<f32>() / weights.len() as f32).sqrt();
            let mean = weights.iter().sum::<f32>() / weights.len() as f32;
            assert!(weights.iter().all(|w| w.is_finite()), "{ty}");
            assert!((0.005..0.2).contains(&rms), "{ty}: rms {rms}");
            assert!(mean.abs() < 0.5 * rms, "{ty}: mean {mean}, rms {rms}");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_bytes() {
        let (mut a, mut b) = (vec![0u8; 210], vec![0u8; 210]);
        fill_random(GgmlType::Q6K, &mut a, &mut SplitMix64::new(1));
        fill_random(GgmlType::Q6K, &mut b, &mut SplitMix64::new(1));
        assert_eq!(a, b);
    }
}
