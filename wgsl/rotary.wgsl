// Rotary angles: position (times freq_scale) times the pair's inverse frequency, from
// a table the host computes (`Rope::inv_freq`, the CPU's own), so that both sides turn
// by the same f32 angle.

// sin and cos of `angle`, reduced to [−π, π] first: Vulkan promises their accuracy only
// there, and rotary angles reach 10^5 radians. k = round(angle / 2π), and angle − k·2π
// with 2π in three parts (Cody and Waite): k times each of the first two is exact for
// |k| < 2^16, so the reduction loses nothing to the size of the angle.
fn sin_cos(angle: f32) -> vec2<f32> {
    let k = round(angle * 0.15915494);
    let reduced = ((angle - k * 6.28125) - k * 0.0019378662) - k * -2.5590314e-6;
    return vec2<f32>(sin(reduced), cos(reduced));
}

// (x0, x1) turned by `angle`.
fn turn(x0: f32, x1: f32, angle: f32) -> vec2<f32> {
    let sc = sin_cos(angle);
    return vec2<f32>(x0 * sc.y - x1 * sc.x, x0 * sc.x + x1 * sc.y);
}
