// Q3_K, 110 bytes: hmask: [u8; 32], qs: [u8; 64], scales: [u8; 12] (sixteen 6-bit
// scales), d: f16. Low bits as Q2_K; the high bit (in hmask) clear means −4.
const BLOCK_WEIGHTS: u32 = 256u;
// Padded on the device from 110 bytes to a whole number of words.
const BLOCK_BYTES: u32 = 112u;

fn dequant8(block: u32, part: u32) -> array<f32, 8> {
    let g = part / 2u;
    let scales = block + 96u;
    let lo = (byte_at(scales + g % 8u) >> (4u * (g / 8u))) & 15u;
    let hi = (byte_at(scales + 8u + g % 4u) >> (2u * (g / 4u))) & 3u;
    let dl = f16_at(block + 108u) * f32(i32(lo | (hi << 4u)) - 32);
    let within = 8u * (part % 2u);
    let at = 32u * (g / 8u) + 16u * (g % 2u) + within;
    let shift = 2u * ((g % 8u) / 2u);
    let plane = 4u * (g / 8u) + shift / 2u;
    let hm = block + 16u * (g % 2u) + within;
    var y: array<f32, 8>;
    let low_bytes = bytes8_at(block + 32u + at);
    let mask_bytes = bytes8_at(hm);
    for (var k = 0u; k < 8u; k++) {
        let low = i32((byte_of(low_bytes, k) >> shift) & 3u);
        let high_set = ((byte_of(mask_bytes, k) >> plane) & 1u) != 0u;
        y[k] = dl * f32(low - select(4, 0, high_set));
    }
    return y;
}
