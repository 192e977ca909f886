// Q6_K, 210 bytes: ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16. Chunk i of
// 32 weights (half i / 4, quarter k = i % 4) takes nibble k / 2 of ql[64 · half +
// 32 · (k % 2) ..] and bits 2k .. 2k + 2 of qh[32 · half ..]; w = d · sc · (q − 32).
const BLOCK_WEIGHTS: u32 = 256u;
// Padded on the device from 210 bytes to a whole number of words.
const BLOCK_BYTES: u32 = 212u;

fn dequant8(block: u32, part: u32) -> array<f32, 8> {
    let i = part / 4u;
    let half = i / 4u;
    let quarter = i % 4u;
    let l0 = 8u * (part % 4u);
    let ql = block + 64u * half + 32u * (quarter % 2u) + l0;
    let qh = block + 128u + 32u * half + l0;
    // All eight weights share one scale: l0 .. l0 + 8 lies within one 16-weight half.
    let dl = f16_at(block + 208u) * f32(i8_at(block + 192u + 2u * i + l0 / 16u));
    var y: array<f32, 8>;
    let low_bytes = bytes8_at(ql);
    let high_bytes = bytes8_at(qh);
    for (var k = 0u; k < 8u; k++) {
        let lo = (byte_of(low_bytes, k) >> (4u * (quarter / 2u))) & 15u;
        let hi = (byte_of(high_bytes, k) >> (2u * quarter)) & 3u;
        y[k] = dl * f32(i32(lo | (hi << 4u)) - 32);
    }
    return y;
}
