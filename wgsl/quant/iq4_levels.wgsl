// The 16 levels IQ4_NL and IQ4_XS index with their 4-bit quants.
var<private> IQ4_LEVELS: array<f32, 16> = array<f32, 16>(
    -127.0, -104.0, -83.0, -65.0, -49.0, -35.0, -22.0, -10.0,
    1.0, 13.0, 25.0, 38.0, 53.0, 69.0, 89.0, 113.0,
);

// Weights 8·part .. 8·part + 8 of 32 stored in the 16 bytes at `qs` (low nibbles
// first), each `d · level`.
fn iq4_part(qs: u32, part: u32, d: f32) -> array<f32, 8> {
    let shift = 4u * (part / 2u);
    let at = qs + 8u * (part % 2u);
    var y: array<f32, 8>;
    let bytes = bytes8_at(at);
    for (var k = 0u; k < 8u; k++) {
        y[k] = d * IQ4_LEVELS[(byte_of(bytes, k) >> shift) & 15u];
    }
    return y;
}
