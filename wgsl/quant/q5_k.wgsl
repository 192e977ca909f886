// Q5_K, 176 bytes: d: f16, dmin: f16, scales: [u8; 12], qh: [u8; 32], qs: [u8; 128].
// As Q4_K, with bit s of qh[l] the fifth bit of weight l of sub-block s.
const BLOCK_WEIGHTS: u32 = 256u;
const BLOCK_BYTES: u32 = 176u;

fn dequant8(block: u32, part: u32) -> array<f32, 8> {
    let s = part / 4u;
    let dm = scale_min(k_header(block), s);
    let dl = dm.x;
    let ml = dm.y;
    let l0 = 8u * (part % 4u);
    let qs = block + 48u + 32u * (s / 2u) + l0;
    let shift = 4u * (s % 2u);
    var y: array<f32, 8>;
    let high_bytes = bytes8_at(block + 16u + l0);
    let low_bytes = bytes8_at(qs);
    for (var k = 0u; k < 8u; k++) {
        let high = ((byte_of(high_bytes, k) >> s) & 1u) << 4u;
        y[k] = dl * f32(((byte_of(low_bytes, k) >> shift) & 15u) | high) - ml;
    }
    return y;
}
