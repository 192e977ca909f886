// The decode matmul's sums over its workgroup by a tree in workgroup memory, on any
// adapter (reduce/subgroups.wgsl is the one for adapters with subgroups).

// The invocations of a workgroup, as the reduction sees them.
struct Lanes {
    @builtin(local_invocation_index) index: u32,
}

// Sized by THREADS, not by the most it takes: with arrays for 128 the kernels of 64
// lost a fifth (gate+up 44.7 → 54.0 µs on an H100), likely through fewer workgroups
// resident a multiprocessor.
var<workgroup> partial: array<vec4<f32>, THREADS>;
var<workgroup> partial_second: array<vec4<f32>, THREADS>;
var<workgroup> partial_squares: array<f32, THREADS>;
// Each group's sums, and the sum of squares of x.
var<workgroup> quad_sums: array<vec4<f32>, 4>;
var<workgroup> squares_sum: f32;

// Sums groups q and q + 1 (as far as QUADS goes) over the workgroup, and for q = 0 the
// squares, for `quad_sum` and `squares_total` to read after a barrier. With TEAMS,
// each team's one group over the team, and the first team's squares (every team's
// cover all of x).
fn reduce_quads(a: vec4<f32>, b: vec4<f32>, squares: f32, q: u32, lanes: Lanes) {
    let lid = lanes.index;
    let size = select(THREADS, THREADS / QUADS, TEAMS);
    let lane = lid % size;
    let two = QUADS > 1u && !TEAMS;
    partial[lid] = a;
    partial_second[lid] = b;
    partial_squares[lid] = squares;
    workgroupBarrier();
    for (var half = size / 2u; half > 0u; half /= 2u) {
        if lane < half {
            partial[lid] += partial[lid + half];
            if q == 0u {
                partial_squares[lid] += partial_squares[lid + half];
            }
            if two {
                partial_second[lid] += partial_second[lid + half];
            }
        }
        workgroupBarrier();
    }
    if lane == 0u {
        quad_sums[q + lid / size] = partial[lid];
        if two {
            quad_sums[q + 1u] = partial_second[lid];
        }
        if q == 0u && lid == 0u {
            squares_sum = partial_squares[0];
        }
    }
}

fn quad_sum(q: u32, lanes: Lanes) -> vec4<f32> {
    return quad_sums[q];
}

fn squares_total(lanes: Lanes) -> f32 {
    return squares_sum;
}
