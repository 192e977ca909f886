// IQ4_NL, 18 bytes: d: f16, qs: [u8; 16]; w = d · level[q].
const BLOCK_WEIGHTS: u32 = 32u;
// Padded on the device from 18 bytes to a whole number of words.
const BLOCK_BYTES: u32 = 20u;

fn dequant8(block: u32, part: u32) -> array<f32, 8> {
    return iq4_part(block + 2u, part, f16_at(block));
}
