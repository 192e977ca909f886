// Q4_1, 20 bytes: d: f16, m: f16, qs: [u8; 16] (nibbles as Q4_0); w = d · q + m.
const BLOCK_WEIGHTS: u32 = 32u;
const BLOCK_BYTES: u32 = 20u;

fn dequant8(block: u32, part: u32) -> array<f32, 8> {
    let d = f16_at(block);
    let m = f16_at(block + 2u);
    let shift = 4u * (part / 2u);
    let qs = block + 4u + 8u * (part % 2u);
    var y: array<f32, 8>;
    let bytes = bytes8_at(qs);
    for (var k = 0u; k < 8u; k++) {
        let q = (byte_of(bytes, k) >> shift) & 15u;
        y[k] = f32(q) * d + m;
    }
    return y;
}
