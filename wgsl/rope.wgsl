// Rotary position embedding of each head of each row t at position P + t: pair i
// of a head turns by pos · freq_scale · inv_freq[i] (rotary.wgsl). `mode` 0 pairs adjacent
// values (2i, 2i + 1), 1 pairs halves (i, i + n_rot / 2); values past n_rot are copied.
// One invocation per output value.

struct Params {
    row_len: u32,
    head_dim: u32,
    n_rot: u32,
    mode: u32,
    freq_scale: f32,
    fixed_rows: u32,
}

@group(0) @binding(1) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> inv_freq: array<f32>;

const ADJACENT: u32 = 0u;

@compute @workgroup_size(256)
fn rope(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let idx = item_index(wid, nwg, lid);
    if idx >= row_count(p.fixed_rows) * p.row_len {
        return;
    }
    let t = idx / p.row_len;
    let d = (idx % p.row_len) % p.head_dim;
    if d >= p.n_rot {
        out[idx] = x[idx];
        return;
    }
    let half = p.n_rot / 2u;
    // Pair i of the head, its two values' indices, and whether this is the second.
    var i: u32;
    var first: u32;
    var second: u32;
    if p.mode == ADJACENT {
        i = d / 2u;
        first = idx - d + 2u * i;
        second = first + 1u;
    } else {
        i = d % half;
        first = idx - d + i;
        second = first + half;
    }
    let turned = turn(x[first], x[second], f32(step.past + t) * p.freq_scale * inv_freq[i]);
    out[idx] = select(turned.x, turned.y, idx == second);
}
