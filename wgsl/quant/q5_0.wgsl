// Q5_0, 22 bytes: d: f16, qh: u32, qs: [u8; 16]. Nibbles as Q4_0; bit w of qh is
// weight w's fifth bit; w = d · (q − 16).
const BLOCK_WEIGHTS: u32 = 32u;
// Padded on the device from 22 bytes to a whole number of words.
const BLOCK_BYTES: u32 = 24u;

fn dequant8(block: u32, part: u32) -> array<f32, 8> {
    let d = f16_at(block);
    let qh = u32_at(block + 2u);
    let shift = 4u * (part / 2u);
    let qs = block + 6u + 8u * (part % 2u);
    var y: array<f32, 8>;
    let bytes = bytes8_at(qs);
    for (var k = 0u; k < 8u; k++) {
        let w = 8u * part + k;
        let q = ((byte_of(bytes, k) >> shift) & 15u) | (((qh >> w) & 1u) << 4u);
        y[k] = f32(i32(q) - 16) * d;
    }
    return y;
}
