//! What the matmuls of a one-token step (decoding) multiply the weights by: x as it
//! is, or x rounded to 8 bits so that the GPU's dot products run on integers
//! (`dot4I8Packed`: four products an instruction), as llama.cpp's GPU backends do.
//! Longer steps (a prompt's) read x in f32 either way, also where a matmul reads one
//! row of them. The rounding is written here once; the GPU's `rounded_q8`
//! (wgsl/matmul.wgsl) is its twin, and the CPU interpreter applies it where a session
//! asks for it. The two round every value alike: each run's scale is a power of two
//! (dividing by it is exact, where WGSL's division is not), and before a norm prologue
//! both round x times the norm weight and scale the sums by the inverse RMS after.

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
/// from the start, scale = the least power of two with max |x| ≤ 127 · scale, and each
/// value becomes round(x / scale) · scale, ties to even. Dividing by a power of two is
/// exact, so the GPU rounds every value alike. Runs whose largest magnitude is below
/// 2^-120 become zeros.
pub fn round_to_int8(x: &mut [f32]) {
    let power_of_two = |e: i32| f32::from_bits(((e + 127) as u32) << 23);
    for run in x.chunks_mut(INT8_RUN) {
        let amax = run.iter().fold(0f32, |m, v| m.max(v.abs()));
        if amax < power_of_two(-120) {
            run.fill(0.0);
            continue;
        }
        // amax lies in [2^k, 2^(k + 1)): 127 · 2^(k − 6) is just under it or not.
        let k = ((amax.to_bits() >> 23) & 0xff) as i32 - 127;
        let e = if amax <= 127.0 * power_of_two(k - 6) {
            k - 6
        } else {
            k - 5
        };
        let (scale, inv) = (power_of_two(e), power_of_two(-e));
        for v in run.iter_mut() {
            *v = (*v * inv).round_ties_even() * scale;
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
            -0.25, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0,
            0.0, // max 0.25: scale 2^-8 (127 · 2^-9 < 0.25)
            128.0, 1.0, -1.5, 2.5, 0.0, 0.0, 0.0, 0.0, // max 128: scale 2
            1e-37, -1e-38, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, // below 2^-120: zeros
        ];
        round_to_int8(&mut x);
        assert_eq!(&x[..8], &[1.0, -3.0, 0.0, 127.0, 3.0, -1.0, 0.0, 64.0]);
        assert_eq!(&x[8..16], &[0.0; 8]);
        let step = 1.0 / 256.0;
        assert_eq!(&x[16..18], &[-64.0 * step, 26.0 * step]);
        // 1.0 / 2 and 2.5 / 2 are ties, to even: 0 and 2; -1.5 / 2 rounds to -1.
        assert_eq!(&x[24..28], &[128.0, 0.0, -2.0, 2.0]);
        assert_eq!(&x[32..], &[0.0; 8]);
    }
}
