// Q4_K, 144 bytes: d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128]. Sub-block s of
// 32 weights takes nibble s % 2 of qs[32 · (s / 2) ..]; w = d · sc · q − dmin · m.
// Blocks are whole words: dequantisation reads words, not bytes.
const BLOCK_WEIGHTS: u32 = 256u;
const BLOCK_BYTES: u32 = 144u;

fn dequant8(block: u32, part: u32) -> array<f32, 8> {
    let s = part / 4u;
    let dm = scale_min(k_header(block), s);
    let q = block / 4u + 4u + 8u * (s / 2u) + 2u * (part % 4u);
    let shift = 4u * (s % 2u);
    let a = bytes4((weights[q] >> shift) & 0x0f0f0f0fu, 0.0) * dm.x - dm.y;
    let b = bytes4((weights[q + 1u] >> shift) & 0x0f0f0f0fu, 0.0) * dm.x - dm.y;
    return array<f32, 8>(a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w);
}
