// The angle pair i of a head turns by at position `pos` (already times freq_scale):
// pos · base^(−2i / n_rot), as the CPU's `kernels::rope` computes it.
fn rope_angle(pos: f32, i: u32, n_rot: u32, base: f32) -> f32 {
    return pos * pow(base, -2.0 * f32(i) / f32(n_rot));
}
