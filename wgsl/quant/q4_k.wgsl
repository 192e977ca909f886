// Q4_K, 144 bytes: d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128]. Sub-block s of
// 32 weights takes nibble s % 2 of qs[32 · (s / 2) ..]; w = d · sc · q − dmin · m.
const BLOCK_WEIGHTS: u32 = 256u;
const BLOCK_BYTES: u32 = 144u;

fn dequant8(block: u32, part: u32) -> array<f32, 8> {
    let s = part / 4u;
    let sm = scale_min_k4(s, block + 4u);
    let dl = f16_at(block) * f32(sm.x);
    let ml = f16_at(block + 2u) * f32(sm.y);
    let qs = block + 16u + 32u * (s / 2u) + 8u * (part % 4u);
    let shift = 4u * (s % 2u);
    var y: array<f32, 8>;
    let bytes = bytes8_at(qs);
    for (var k = 0u; k < 8u; k++) {
        y[k] = dl * f32((byte_of(bytes, k) >> shift) & 15u) - ml;
    }
    return y;
}
