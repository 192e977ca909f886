//! What the matmuls of a decode step (one row of x) multiply the weights by: x as it
//! is, or x rounded to 8 bits so that the GPU's dot products run on integers
//! (`dot4I8Packed`: four products a instruction, and a quarter of x's bytes), as
//! llama.cpp's GPU backends do. The rounding is written here once; the GPU's
//! `rounded_q8` (wgsl/matmul.wgsl) is its twin, and the CPU interpreter applies it
//! where a session asks for it, so that the two still agree to f32's rounding.

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

/// Rounds `x` in place to the values 8 bits hold: in each run of [`INT8_RUN`] values
/// from the start, scale = max |x| / 127 and each value becomes round(x / scale) ·
/// scale (ties to even, as WGSL's `round`).
pub fn round_to_int8(x: &mut [f32]) {
    for run in x.chunks_mut(INT8_RUN) {
        let amax = run.iter().fold(0f32, |m, v| m.max(v.abs()));
        let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
        let scale = amax / 127.0;
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
            -0.254, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, // max 0.254: scale 0.002
        ];
        round_to_int8(&mut x);
        assert_eq!(&x[..8], &[1.0, -3.0, 0.0, 127.0, 3.0, -1.0, 0.0, 64.0]);
        assert_eq!(&x[8..16], &[0.0; 8]);
        assert!((x[16] + 0.254).abs() < 1e-7, "{}", x[16]);
        assert!((x[17] - 50.0 * 0.002).abs() < 1e-7, "{}", x[17]);
    }
}
