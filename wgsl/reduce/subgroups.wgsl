// The decode matmul's sums over its workgroup where the device has subgroups: each
// subgroup sums its invocations' values in registers, and the subgroups' sums meet in workgroup memory, one barrier in all
// instead of the tree's one a halving (reduce/tree.wgsl). No assumption on which
// invocations form a subgroup: each is named by its `subgroup_id`, and a team's values
// are summed apart from the other teams' even where one subgroup holds several.

struct Lanes {
    @builtin(local_invocation_index) index: u32,
    @builtin(subgroup_id) subgroup: u32,
    @builtin(num_subgroups) subgroups: u32,
    @builtin(subgroup_invocation_id) in_subgroup: u32,
}

// Group q's sum over subgroup s at q · subgroups + s: the executor takes subgroups only
// where they are 4 invocations or more, so four groups' fit.
var<workgroup> subgroup_sums: array<vec4<f32>, THREADS>;
var<workgroup> subgroup_squares: array<f32, THREADS>;

// As reduce/tree.wgsl's: groups q and q + 1 (as far as QUADS goes), or each team's
// group, and for q = 0 the squares (with TEAMS, the first team's).
fn reduce_quads(a: vec4<f32>, b: vec4<f32>, squares: f32, q: u32, lanes: Lanes) {
    // Every invocation is active here, so each subgroup has one of index 0.
    let leader = lanes.in_subgroup == 0u;
    let n = lanes.subgroups;
    let team = lanes.index / (THREADS / QUADS);
    if TEAMS {
        // A subgroup within one team (as where subgroups are runs of consecutive
        // invocations, as wide as a team or less) sums its team's group, and zeros for
        // the others'; one that spans teams sums each team's apart. (The executor's
        // teams, of 64 invocations or more, take the first way on every adapter at hand;
        // the second keeps the sums right where WGSL promises no such layout, and
        // tests/gpu_reduce.rs takes it with teams narrower than a subgroup. A single loop
        // over the teams a subgroup holds, instead of both ways, may cost TinyLlama a
        // tenth on the H100: BENCHMARKS.md, session 11.)
        if subgroupAll(team == subgroupBroadcastFirst(team)) {
            let sum = subgroupAdd(a);
            if leader {
                for (var t = 0u; t < QUADS; t++) {
                    subgroup_sums[t * n + lanes.subgroup] = select(vec4<f32>(), sum, t == team);
                }
            }
        } else {
            for (var t = 0u; t < QUADS; t++) {
                let sum = subgroupAdd(select(vec4<f32>(), a, team == t));
                if leader {
                    subgroup_sums[t * n + lanes.subgroup] = sum;
                }
            }
        }
    } else {
        let sum = subgroupAdd(a);
        if leader {
            subgroup_sums[q * n + lanes.subgroup] = sum;
        }
        if QUADS > 1u {
            let second = subgroupAdd(b);
            if leader {
                subgroup_sums[(q + 1u) * n + lanes.subgroup] = second;
            }
        }
    }
    if q == 0u {
        let sum = subgroupAdd(select(squares, 0.0, TEAMS && team != 0u));
        if leader {
            subgroup_squares[lanes.subgroup] = sum;
        }
    }
}

fn quad_sum(q: u32, lanes: Lanes) -> vec4<f32> {
    var sum = vec4<f32>();
    for (var s = 0u; s < lanes.subgroups; s++) {
        sum += subgroup_sums[q * lanes.subgroups + s];
    }
    return sum;
}

fn squares_total(lanes: Lanes) -> f32 {
    var sum = 0.0;
    for (var s = 0u; s < lanes.subgroups; s++) {
        sum += subgroup_squares[s];
    }
    return sum;
}
