// RMS normalisation of every `group` consecutive values: x / sqrt(mean(x²) + eps);
// `rms_norm_mul` (the fused node) then multiplies by the norm weight and, when
// `residual` is 1, adds the residual. One workgroup of 64 per group.

struct Params {
    group: u32,
    groups_per_row: u32,
    // Rows: 0 means T.
    fixed_rows: u32,
    eps: f32,
    residual: u32,
}

@group(0) @binding(1) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> weight: array<f32>;
@group(0) @binding(4) var<storage, read> residual: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

// 1 / RMS of group g.
fn group_inv_rms(g: u32, lid: u32) -> f32 {
    let start = g * p.group;
    var sum_sq = 0.0;
    for (var i = lid; i < p.group; i += REDUCE_WIDTH) {
        let v = x[start + i];
        sum_sq += v * v;
    }
    let mean_sq = workgroup_sum(sum_sq, lid) / f32(p.group);
    return 1.0 / sqrt(mean_sq + p.eps);
}

@compute @workgroup_size(64)
fn rms_norm(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = workgroup_index(wid, nwg);
    if g >= row_count(p.fixed_rows) * p.groups_per_row {
        return;
    }
    let inv = group_inv_rms(g, lid);
    let start = g * p.group;
    for (var i = lid; i < p.group; i += REDUCE_WIDTH) {
        out[start + i] = x[start + i] * inv;
    }
}

@compute @workgroup_size(64)
fn rms_norm_mul(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = workgroup_index(wid, nwg);
    if g >= row_count(p.fixed_rows) * p.groups_per_row {
        return;
    }
    let inv = group_inv_rms(g, lid);
    let start = g * p.group;
    for (var i = lid; i < p.group; i += REDUCE_WIDTH) {
        var v = x[start + i] * inv * weight[i];
        if p.residual == 1u {
            v += residual[start + i];
        }
        out[start + i] = v;
    }
}
