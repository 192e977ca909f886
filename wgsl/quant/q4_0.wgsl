// Q4_0, 18 bytes: d: f16, qs: [u8; 16]. Byte j holds weight j (low nibble) and
// j + 16 (high nibble); w = d · (q − 8).
const BLOCK_WEIGHTS: u32 = 32u;
// Padded on the device from 18 bytes to a whole number of words.
const BLOCK_BYTES: u32 = 20u;

fn dequant8(block: u32, part: u32) -> array<f32, 8> {
    let d = f16_at(block);
    let shift = 4u * (part / 2u);
    let qs = block + 2u + 8u * (part % 2u);
    var y: array<f32, 8>;
    let bytes = bytes8_at(qs);
    for (var k = 0u; k < 8u; k++) {
        let q = (byte_of(bytes, k) >> shift) & 15u;
        y[k] = f32(i32(q) - 8) * d;
    }
    return y;
}
