//! The decode matmul's sums over its workgroup (`reduce_quads`, `quad_sum` and
//! `squares_total` in wgsl/reduce/), by the tree and in subgroups, against the same sums
//! on the CPU: one, two and four groups of rows, every invocation on each or a team of
//! them on one (`TEAMS`), and teams narrower than a subgroup, so that one subgroup holds
//! several (the executor's teams are 64 invocations or more, wider than the subgroups of
//! every adapter at hand). Values are small integers: every order of summing gives the
//! same f32 sums, which are compared exactly.

mod gpu_common;

use gpu_common::{gpu, rng};
use rustorch::runtime::gpu::{GpuContext, Reduction};

/// Calls the reduction as `matmul_decode` does: each invocation's four groups' partial
/// sums and its squares in, each group's sum and the squares' out.
const HARNESS: &str = r#"
override QUADS: u32 = 1u;
override THREADS: u32 = 64u;
override TEAMS: bool = false;

@group(0) @binding(0) var<storage, read> partials: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> sums: array<vec4<f32>>;

@compute @workgroup_size(THREADS)
fn reduce(lanes: Lanes) {
    let at = 5u * lanes.index;
    let squares = partials[at + 4u].x;
    reduce_quads(partials[at], partials[at + 1u], squares, 0u, lanes);
    if QUADS > 2u && !TEAMS {
        reduce_quads(partials[at + 2u], partials[at + 3u], 0.0, 2u, lanes);
    }
    workgroupBarrier();
    if lanes.index < QUADS {
        sums[lanes.index] = quad_sum(lanes.index, lanes);
    }
    if lanes.index == 0u {
        sums[4] = vec4<f32>(squares_total(lanes));
    }
}
"#;

fn source(reduction: Reduction) -> String {
    let reduce = match reduction {
        Reduction::Tree => include_str!("../wgsl/reduce/tree.wgsl"),
        Reduction::Subgroups => include_str!("../wgsl/reduce/subgroups.wgsl"),
    };
    format!("{reduce}\n{HARNESS}")
}

/// A workgroup's shape: `threads` invocations, `quads` groups, teams or not.
#[derive(Debug, Clone, Copy)]
struct Shape {
    threads: u32,
    quads: u32,
    teams: bool,
}

/// The sums the reduction must give: each group's over every invocation (over its team
/// with teams, from its first partial), and the squares (the first team's with teams).
fn expected(shape: Shape, partials: &[[f32; 4]]) -> Vec<[f32; 4]> {
    let invocation = |i: usize| &partials[5 * i..5 * i + 5];
    let team_size = (shape.threads / shape.quads) as usize;
    let mut sums = vec![[0.0f32; 4]; 5];
    for i in 0..shape.threads as usize {
        let own = invocation(i);
        for q in 0..shape.quads as usize {
            let part = match shape.teams {
                true if i / team_size == q => own[0],
                true => continue,
                false => own[q],
            };
            for (sum, v) in sums[q].iter_mut().zip(part) {
                *sum += v;
            }
        }
        if !shape.teams || i < team_size {
            sums[4] = sums[4].map(|s| s + own[4][0]);
        }
    }
    sums
}

fn run(
    context: &GpuContext,
    reduction: Reduction,
    shape: Shape,
    partials: &[[f32; 4]],
) -> Vec<[f32; 4]> {
    use wgpu::util::DeviceExt;
    let device = &context.device;
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("reduce"),
        source: wgpu::ShaderSource::Wgsl(source(reduction).into()),
    });
    let constants = [
        ("QUADS", f64::from(shape.quads)),
        ("THREADS", f64::from(shape.threads)),
        ("TEAMS", f64::from(u8::from(shape.teams))),
    ];
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("reduce"),
        layout: None,
        module: &module,
        entry_point: Some("reduce"),
        compilation_options: wgpu::PipelineCompilationOptions {
            constants: &constants,
            ..Default::default()
        },
        cache: None,
    });
    let input = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("partials"),
        contents: bytemuck::cast_slice(partials),
        usage: wgpu::BufferUsages::STORAGE,
    });
    let bytes = 5 * 16;
    let output = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("sums"),
        size: bytes,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let readback = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("readback"),
        size: bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("reduce"),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: input.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: output.as_entire_binding(),
            },
        ],
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(1, 1, 1);
    }
    encoder.copy_buffer_to_buffer(&output, 0, &readback, 0, bytes);
    context.queue.submit([encoder.finish()]);
    let slice = readback.slice(..);
    slice.map_async(wgpu::MapMode::Read, |r| r.expect("mapped"));
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .expect("the device finishes");
    let sums: Vec<[f32; 4]> = bytemuck::cast_slice(&slice.get_mapped_range().unwrap()).to_vec();
    sums
}

#[test]
fn workgroup_sums_by_tree_and_in_subgroups() {
    let Some(context) = gpu() else { return };
    let mut rng = rng("workgroup_sums_by_tree_and_in_subgroups");
    let subgroup = context.adapter_info().subgroup_max_size.max(4);
    let mut reductions = vec![Reduction::Tree];
    if context.reduction() == Reduction::Subgroups {
        reductions.push(Reduction::Subgroups);
    }
    let mut shapes = Vec::new();
    for threads in [64, 128, 256] {
        for quads in [1, 2, 4] {
            shapes.push(Shape {
                threads,
                quads,
                teams: false,
            });
        }
    }
    for quads in [2, 4] {
        // Teams as the executor makes them, and narrower than a subgroup.
        for threads in [64 * quads, quads * subgroup / 2] {
            shapes.push(Shape {
                threads,
                quads,
                teams: true,
            });
        }
    }
    for reduction in reductions {
        for &shape in &shapes {
            let partials: Vec<[f32; 4]> = (0..5 * shape.threads)
                .map(|_| [(); 4].map(|_| (rng.next_u64() % 17) as f32 - 8.0))
                .collect();
            let got = run(context, reduction, shape, &partials);
            let want = expected(shape, &partials);
            let groups = shape.quads as usize;
            assert_eq!(
                (&got[..groups], got[4][0]),
                (&want[..groups], want[4][0]),
                "{reduction:?} over {shape:?}"
            );
        }
    }
}
