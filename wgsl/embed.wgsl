// Embedding lookup: rows `step.ids` of a quantised table, dequantised. The table may
// be split by rows over several buffers; each dispatch covers the ids in its part.

struct Params {
    cols: u32,
    // Table rows in this part, and the id of its first row.
    rows: u32,
    first_row: u32,
}

@group(0) @binding(1) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> weights: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// One invocation per 8 output values.
@compute @workgroup_size(256)
fn embed(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let item = item_index(wid, nwg, lid);
    let parts = p.cols / 8u;
    let t = item / parts;
    if t >= step.tokens {
        return;
    }
    let id = step.ids[t];
    if id < p.first_row || id >= p.first_row + p.rows {
        return;
    }
    let g = item % parts;
    let w = row_part((id - p.first_row) * row_bytes(p.cols), g);
    for (var k = 0u; k < 8u; k++) {
        out[t * p.cols + 8u * g + k] = w[k];
    }
}
