// IQ4_XS, 136 bytes: d: f16, scales_h: u16, scales_l: [u8; 4], qs: [u8; 128]. Chunk ib
// of 32 weights has a 6-bit scale (4 low bits in scales_l, 2 high in scales_h) and
// 16 bytes of qs as IQ4_NL; w = d · (scale − 32) · level[q].
const BLOCK_WEIGHTS: u32 = 256u;
const BLOCK_BYTES: u32 = 136u;

fn dequant8(block: u32, part: u32) -> array<f32, 8> {
    let ib = part / 4u;
    let lo = (byte_at(block + 4u + ib / 2u) >> (4u * (ib % 2u))) & 15u;
    let hi = (u16_at(block + 2u) >> (2u * ib)) & 3u;
    let dl = f16_at(block) * f32(i32(lo | (hi << 4u)) - 32);
    return iq4_part(block + 8u + 16u * ib, part % 4u, dl);
}
