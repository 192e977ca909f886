// Q8_0, 34 bytes: d: f16, qs: [i8; 32]; w = d · q.
const BLOCK_WEIGHTS: u32 = 32u;
// Padded on the device from 34 bytes to a whole number of words.
const BLOCK_BYTES: u32 = 36u;

fn dequant8(block: u32, part: u32) -> array<f32, 8> {
    let d = f16_at(block);
    let qs = block + 2u + 8u * part;
    var y: array<f32, 8>;
    let bytes = bytes8_at(qs);
    for (var k = 0u; k < 8u; k++) {
        y[k] = f32(i8_of(bytes, k)) * d;
    }
    return y;
}
