// RMS normalisation of every `group` consecutive values: x / sqrt(mean(x²) + eps);
// `rms_norm_mul` (the fused node, and a linear's prologue) then multiplies by the norm
// weight and, when `residual` is 1, adds the residual. One workgroup of 256 per group
// (a decode step's prologue is one group, so one workgroup reads the whole row); each
// invocation takes 16 values at a time in straight-line code, so their loads are in
// flight together (a loop's would wait on each other).

const NORM_WIDTH: u32 = 256u;

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

fn x4(at: u32) -> vec4<f32> {
    return vec4<f32>(x[at], x[at + 1u], x[at + 2u], x[at + 3u]);
}

// 1 / RMS of group g.
fn group_inv_rms(g: u32, lid: u32) -> f32 {
    let start = g * p.group;
    let whole = p.group / 16u * 16u;
    var sum_sq = 0.0;
    for (var i = 16u * lid; i < whole; i += 16u * NORM_WIDTH) {
        let a = x4(start + i);
        let b = x4(start + i + 4u);
        let c = x4(start + i + 8u);
        let d = x4(start + i + 12u);
        sum_sq += dot(a, a) + dot(b, b) + dot(c, c) + dot(d, d);
    }
    for (var i = whole + lid; i < p.group; i += NORM_WIDTH) {
        sum_sq += x[start + i] * x[start + i];
    }
    let mean_sq = workgroup_sum_of(sum_sq, lid, NORM_WIDTH) / f32(p.group);
    return 1.0 / sqrt(mean_sq + p.eps);
}

// Values i .. i + 4 of group g normalised by `inv`, times the weight and plus the
// residual when `fused`.
fn normed4(g: u32, i: u32, inv: f32, fused: bool) -> vec4<f32> {
    let at = g * p.group + i;
    var v = x4(at) * inv;
    if fused {
        v *= vec4<f32>(weight[i], weight[i + 1u], weight[i + 2u], weight[i + 3u]);
        if p.residual == 1u {
            v += vec4<f32>(residual[at], residual[at + 1u], residual[at + 2u], residual[at + 3u]);
        }
    }
    return v;
}

fn normed(g: u32, i: u32, inv: f32, fused: bool) -> f32 {
    let at = g * p.group + i;
    var v = x[at] * inv;
    if fused {
        v *= weight[i];
        if p.residual == 1u {
            v += residual[at];
        }
    }
    return v;
}

fn write4(at: u32, v: vec4<f32>) {
    out[at] = v.x;
    out[at + 1u] = v.y;
    out[at + 2u] = v.z;
    out[at + 3u] = v.w;
}

fn normalise(g: u32, lid: u32, fused: bool) {
    let inv = group_inv_rms(g, lid);
    let start = g * p.group;
    let whole = p.group / 16u * 16u;
    for (var i = 16u * lid; i < whole; i += 16u * NORM_WIDTH) {
        let a = normed4(g, i, inv, fused);
        let b = normed4(g, i + 4u, inv, fused);
        let c = normed4(g, i + 8u, inv, fused);
        let d = normed4(g, i + 12u, inv, fused);
        write4(start + i, a);
        write4(start + i + 4u, b);
        write4(start + i + 8u, c);
        write4(start + i + 12u, d);
    }
    for (var i = whole + lid; i < p.group; i += NORM_WIDTH) {
        out[start + i] = normed(g, i, inv, fused);
    }
}

@compute @workgroup_size(256)
fn rms_norm(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = workgroup_index(wid, nwg);
    if g < row_count(p.fixed_rows) * p.groups_per_row {
        normalise(g, lid, false);
    }
}

@compute @workgroup_size(256)
fn rms_norm_mul(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = workgroup_index(wid, nwg);
    if g < row_count(p.fixed_rows) * p.groups_per_row {
        normalise(g, lid, true);
    }
}
