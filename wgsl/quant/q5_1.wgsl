// Q5_1, 24 bytes: d: f16, m: f16, qh: u32, qs: [u8; 16] (bits as Q5_0); w = d · q + m.
const BLOCK_WEIGHTS: u32 = 32u;
const BLOCK_BYTES: u32 = 24u;

fn dequant8(block: u32, part: u32) -> array<f32, 8> {
    let d = f16_at(block);
    let m = f16_at(block + 2u);
    let qh = u32_at(block + 4u);
    let shift = 4u * (part / 2u);
    let qs = block + 8u + 8u * (part % 2u);
    var y: array<f32, 8>;
    let bytes = bytes8_at(qs);
    for (var k = 0u; k < 8u; k++) {
        let w = 8u * part + k;
        let q = ((byte_of(bytes, k) >> shift) & 15u) | (((qh >> w) & 1u) << 4u);
        y[k] = f32(q) * d + m;
    }
    return y;
}
