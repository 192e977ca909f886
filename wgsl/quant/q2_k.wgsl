// Q2_K, 84 bytes: scales: [u8; 16] (low nibble scale, high nibble min), qs: [u8; 64],
// d: f16, dmin: f16. Group g of 16 weights takes the 2-bit plane `shift` of
// qs[at .. at + 16]; w = d · sc · q − dmin · m.
const BLOCK_WEIGHTS: u32 = 256u;
const BLOCK_BYTES: u32 = 84u;

fn dequant8(block: u32, part: u32) -> array<f32, 8> {
    let g = part / 2u;
    let sc = byte_at(block + g);
    let dl = f16_at(block + 80u) * f32(sc & 15u);
    let ml = f16_at(block + 82u) * f32(sc >> 4u);
    let at = 32u * (g / 8u) + 16u * (g % 2u) + 8u * (part % 2u);
    let shift = 2u * ((g % 8u) / 2u);
    var y: array<f32, 8>;
    let bytes = bytes8_at(block + 16u + at);
    for (var k = 0u; k < 8u; k++) {
        let q = (byte_of(bytes, k) >> shift) & 3u;
        y[k] = dl * f32(q) - ml;
    }
    return y;
}
