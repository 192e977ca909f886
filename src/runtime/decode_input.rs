//! What the matmuls of a one-token step (decoding) multiply the weights by: x as it
//! is, or x rounded to 8 bits so that the GPU's dot products run on integers
//! (`dot4I8Packed`: four products an instruction), as llama.cpp's GPU backends do.
//! Longer steps (a prompt's) read x in f32 either way, also where a matmul reads one
//! row of them. The rounding is written here once; the GPU's `rounded_q8`
//! (wgsl/matmul.wgsl) is its twin, and the CPU interpreter applies it where a session
//! asks for it. The two round alike up to WGSL's division (within 2.5 ULP, where the
//! CPU's is exact) and a folded norm prologue (the GPU rounds x times the norm weight
//! and applies the RMS scale after): a value at a rounding boundary may land one step
//! apart, which moves a dot product by about 1/127 of one term.

/// Values that share one scale: the runs of 8 in which the decode kernel holds x.
pub const INT8_RUN: usize = 8;

/// How decode matmuls read x.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DecodeInput {
    /// x in f32, as every other kernel reads it: the default.
    #[default]
    F32,
    /// x rounded to 8 bits ([`round_to_int8`]) first.
    Int8,
}

impl DecodeInput {
    /// How the matmuls of a step of `tokens` tokens read x: as asked in one-token
    /// steps, in f32 in longer ones.
    pub fn in_step(self, tokens: usize) -> DecodeInput {
        if tokens == 1 {
            self
        } else {
            DecodeInput::F32
        }
    }
}

/// Rounds `x` in place to the values 8 bits hold: in each run of [`INT8_RUN`] values
/// from the start, scale = max |x| / 127 and each value becomes round(x / scale) ·
/// scale, ties to even, computed as the GPU computes it: x · (127 / max |x|) + 1.5 ·
/// 2^23 in one fused multiply-add. Runs whose largest magnitude is below the smallest
/// normal float become zeros.
pub fn round_to_int8(x: &mut [f32]) {
    const ROUNDING_BIAS: f32 = 12_582_912.0;
    for run in x.chunks_mut(INT8_RUN) {
        let amax = run.iter().fold(0f32, |m, v| m.max(v.abs()));
        let inv = if amax >= f32::MIN_POSITIVE {
            127.0 / amax
        } else {
            0.0
        };
        let scale = amax / 127.0;
        for v in run.iter_mut() {
            *v = (v.mul_add(inv, ROUNDING_BIAS) - ROUNDING_BIAS) * scale;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_run_keeps_its_largest_value_and_rounds_the_rest_on_its_scale() {
        let mut x = [
            1.0, -2.54, 0.5, 127.0, 3.2, -0.6, 0.0, 64.5, // max 127: scale 1
            0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, // all zero: stays zero
            -0.254, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, // max 0.254: scale 0.002
            1e-39, -1e-39, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, // below the normal floats: zeros
        ];
        round_to_int8(&mut x);
        assert_eq!(&x[..8], &[1.0, -3.0, 0.0, 127.0, 3.0, -1.0, 0.0, 64.0]);
        assert_eq!(&x[8..16], &[0.0; 8]);
        assert!((x[16] + 0.254).abs() < 1e-7, "{}", x[16]);
        assert!((x[17] - 50.0 * 0.002).abs() < 1e-7, "{}", x[17]);
        assert_eq!(&x[24..], &[0.0; 8]);
    }
}
