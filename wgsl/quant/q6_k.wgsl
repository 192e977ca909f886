// Q6_K, 210 bytes: ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16. Chunk i of
// 32 weights (half i / 4, quarter k = i % 4) takes nibble k / 2 of ql[64 · half +
// 32 · (k % 2) ..] and bits 2k .. 2k + 2 of qh[32 · half ..]; w = d · sc · (q − 32).
const BLOCK_WEIGHTS: u32 = 256u;
// Padded on the device from 210 bytes to a whole number of words: dequantisation
// reads words, not bytes.
const BLOCK_BYTES: u32 = 212u;

// Four quants (q, 0 .. 64) from a word of low nibbles (at `lo_shift`) and a word of
// high bit pairs (at `hi_shift`).
fn q6_word(ql: u32, qh: u32, lo_shift: u32, hi_shift: u32) -> u32 {
    return ((ql >> lo_shift) & 0x0f0f0f0fu) | (((qh >> hi_shift) & 0x03030303u) << 4u);
}

// Four weights (q − 32) likewise.
fn q6_k_quants(ql: u32, qh: u32, lo_shift: u32, hi_shift: u32) -> vec4<f32> {
    return bytes4(q6_word(ql, qh, lo_shift, hi_shift), 32.0);
}

// Signed byte `i` (0..4) of a word.
fn i8_of_word(word: u32, i: u32) -> f32 {
    return f32(i32(word << (24u - 8u * i)) >> 24u);
}

fn dequant8(block: u32, part: u32) -> array<f32, 8> {
    let i = part / 4u;
    let half = i / 4u;
    let quarter = i % 4u;
    let l0 = 8u * (part % 4u);
    let ql = (block + 64u * half + 32u * (quarter % 2u) + l0) / 4u;
    let qh = (block + 128u + 32u * half + l0) / 4u;
    // All eight weights share one scale: l0 .. l0 + 8 lies within one 16-weight half.
    let sc = 2u * i + l0 / 16u;
    let d = unpack2x16float(weights[(block + 208u) / 4u]).x;
    let dl = d * i8_of_word(weights[(block + 192u) / 4u + sc / 4u], sc % 4u);
    let lo_shift = 4u * (quarter / 2u);
    let hi_shift = 2u * quarter;
    let a = q6_k_quants(weights[ql], weights[qh], lo_shift, hi_shift) * dl;
    let b = q6_k_quants(weights[ql + 1u], weights[qh + 1u], lo_shift, hi_shift) * dl;
    return array<f32, 8>(a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w);
}
