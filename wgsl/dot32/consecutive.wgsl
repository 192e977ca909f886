// Slice g of a row is its weights 32 · g .. 32 · g + 32, in order.
fn columns32(g: u32) -> vec2<u32> {
    return vec2<u32>(32u * g, 32u * g + 16u);
}
