//! Every WGSL module the GPU executor can build (every kernel family, every weight
//! type) passes naga's validation with the capabilities wgpu grants everywhere, and
//! translates to MSL (with real bindings), SPIR-V and HLSL; so do the decode matmul's
//! variants for adapters with subgroups (with that capability, which wgpu grants on
//! Metal, Vulkan and DX12); the tensor-core matmuls, which only Vulkan adapters with
//! cooperative matrices build, to SPIR-V. No GPU needed.

use naga::back::msl;
use naga::valid::{Capabilities, ValidationFlags, Validator};
use rustorch::gguf::GgmlType;
use rustorch::runtime::gpu::{
    coop_matmul_source, DecodeKernel, Module, Reduction, Specialisation, COOP_PREFILL,
};

fn parse_and_validate(
    module: Module,
    reduction: Reduction,
) -> (naga::Module, naga::valid::ModuleInfo) {
    let name = module.file_name(reduction);
    let source = module.source_with(reduction);
    let parsed = naga::front::wgsl::parse_str(&source).unwrap_or_else(|e| {
        panic!("{name}: {}", e.emit_to_string(&source));
    });
    let mut caps = Capabilities::default() | Capabilities::SHADER_FLOAT16_IN_FLOAT32;
    if reduction == Reduction::Subgroups {
        caps |= Capabilities::SUBGROUP;
    }
    let info = Validator::new(ValidationFlags::all(), caps)
        .validate(&parsed)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&source)));
    (parsed, info)
}

/// Each entry point's buffers at the Metal slots of their bindings.
fn msl_bindings(module: &naga::Module) -> msl::EntryPointResourceMap {
    let mut resources = msl::BindingMap::new();
    for (_, var) in module.global_variables.iter() {
        let Some(binding) = var.binding else { continue };
        let mutable = matches!(
            var.space,
            naga::AddressSpace::Storage { access } if access.contains(naga::StorageAccess::STORE)
        );
        let target = msl::BindTarget {
            buffer: Some(binding.binding as u8),
            mutable,
            ..Default::default()
        };
        resources.insert(binding, target);
    }
    module
        .entry_points
        .iter()
        .map(|ep| {
            let res = msl::EntryPointResources {
                resources: resources.clone(),
                sizes_buffer: Some(30),
                ..Default::default()
            };
            (ep.name.clone(), res)
        })
        .collect()
}

#[test]
fn every_module_validates_and_translates() {
    let modules = Module::all();
    assert!(modules.len() >= 6 + 2 * 15);
    for module in modules {
        for &reduction in module.reductions() {
            let name = module.file_name(reduction);
            let (parsed, info) = parse_and_validate(module, reduction);
            let names: Vec<&str> = parsed
                .entry_points
                .iter()
                .map(|e| e.name.as_str())
                .collect();
            for entry in module.entry_points() {
                assert!(names.contains(entry), "{name}: no entry point {entry}");
            }
            for constants in specialisations(module) {
                translate(&name, &parsed, &info, &constants);
            }
        }
    }
    assert!(
        Module::all()
            .iter()
            .any(|m| m.reductions().contains(&Reduction::Subgroups)),
        "no module sums in subgroups"
    );
}

/// Every override at its default, and the decode matmul and attention in each of
/// their specialisations, as the executor builds them.
fn specialisations(module: Module) -> Vec<Vec<(&'static str, f64)>> {
    let mut specialisations = vec![Vec::new()];
    if matches!(module, Module::Matmul(_)) {
        for fold in 0..3 {
            for quads in [1, 2, 4] {
                let plain = DecodeKernel {
                    fold,
                    quads,
                    round_x: false,
                    threads: 64,
                    read_runs: false,
                    write_runs: false,
                    runs_normed: false,
                    teams: false,
                };
                // Runs are exchanged only with x in 8 bits.
                let int8 = DecodeKernel {
                    round_x: true,
                    ..plain
                };
                let runs = DecodeKernel {
                    read_runs: true,
                    write_runs: true,
                    runs_normed: true,
                    ..int8
                };
                let gated_runs = DecodeKernel {
                    write_runs: true,
                    ..int8
                };
                let mut kernels = Vec::new();
                for threads in [64, 128] {
                    for kernel in [plain, int8, runs, gated_runs] {
                        kernels.push(DecodeKernel { threads, ..kernel });
                    }
                }
                if quads > 1 {
                    let threads = 256;
                    kernels.push(DecodeKernel {
                        threads,
                        teams: true,
                        ..runs
                    });
                }
                for kernel in kernels {
                    specialisations.push(Specialisation::Decode(kernel).constants());
                }
            }
        }
    }
    if matches!(module, Module::SelfAttention(_)) {
        for write_runs in [false, true] {
            for head_dim in [16, 32, 48, 64, 80, 128, 144, 256] {
                for ring in [false, true] {
                    let split = Specialisation::AttentionSplit {
                        head_dim,
                        ring,
                        write_runs,
                    };
                    specialisations.push(split.constants());
                }
            }
            specialisations.push(Specialisation::AttentionCombine { write_runs }.constants());
        }
    }
    specialisations
}

/// `parsed` with its overrides set to `constants` in MSL, SPIR-V and HLSL.
fn translate(
    name: &str,
    parsed: &naga::Module,
    info: &naga::valid::ModuleInfo,
    constants: &[(&str, f64)],
) {
    let what = format!("{name} {constants:?}");
    let constants: naga::back::PipelineConstants =
        constants.iter().map(|&(k, v)| (k.to_string(), v)).collect();
    let (parsed, info) =
        naga::back::pipeline_constants::process_overrides(parsed, info, None, &constants)
            .unwrap_or_else(|e| panic!("{what}: overrides: {e}"));

    let options = msl::Options {
        lang_version: (2, 1),
        per_entry_point_map: msl_bindings(&parsed),
        fake_missing_bindings: false,
        ..Default::default()
    };
    let (metal, _) = msl::write_string(&parsed, &info, &options, &Default::default())
        .unwrap_or_else(|e| panic!("{what}: MSL: {e}"));
    assert!(!metal.contains("fake"), "{what}: placeholder bindings");

    let spirv = naga::back::spv::write_vec(&parsed, &info, &Default::default(), None)
        .unwrap_or_else(|e| panic!("{what}: SPIR-V: {e}"));
    assert_eq!(spirv[0], 0x0723_0203, "{what}: SPIR-V magic");

    let mut hlsl = String::new();
    let options = naga::back::hlsl::Options::default();
    let pipeline = naga::back::hlsl::PipelineOptions::default();
    naga::back::hlsl::Writer::new(&mut hlsl, &options, &pipeline)
        .write(&parsed, &info, None)
        .unwrap_or_else(|e| panic!("{what}: HLSL: {e}"));
    assert!(hlsl.contains("numthreads"), "{what}");
}

#[test]
fn tensor_core_matmuls_validate_and_translate_to_spirv() {
    let caps = Capabilities::default()
        | Capabilities::SHADER_FLOAT16_IN_FLOAT32
        | Capabilities::SHADER_FLOAT16
        | Capabilities::COOPERATIVE_MATRIX;
    for ty in GgmlType::ALL {
        let module = Module::Matmul(ty);
        let source = coop_matmul_source(&module.source());
        let parsed = naga::front::wgsl::parse_str(&source).unwrap_or_else(|e| {
            panic!(
                "{} on tensor cores: {}",
                module.name(),
                e.emit_to_string(&source)
            );
        });
        assert!(
            parsed.entry_points.iter().any(|e| e.name == COOP_PREFILL),
            "{}: no {COOP_PREFILL}",
            module.name()
        );
        let info = Validator::new(ValidationFlags::all(), caps)
            .validate(&parsed)
            .unwrap_or_else(|e| panic!("{}: {}", module.name(), e.emit_to_string(&source)));
        let constants = naga::back::PipelineConstants::default();
        let (parsed, info) =
            naga::back::pipeline_constants::process_overrides(&parsed, &info, None, &constants)
                .unwrap_or_else(|e| panic!("{}: overrides: {e}", module.name()));
        let spirv = naga::back::spv::write_vec(&parsed, &info, &Default::default(), None)
            .unwrap_or_else(|e| panic!("{} on tensor cores: SPIR-V: {e}", module.name()));
        assert_eq!(spirv[0], 0x0723_0203, "{}: SPIR-V magic", module.name());
    }
}

/// WebGPU's default `maxComputeWorkgroupStorageSize`, which every adapter offers.
const DEFAULT_WORKGROUP_MEMORY: u32 = 16384;

/// Each entry point's workgroup variables (those it or a function it calls uses) fit
/// WebGPU's default, so that every module builds on any adapter.
#[test]
fn every_kernel_fits_the_default_workgroup_memory() {
    for module in Module::all() {
        for &reduction in module.reductions() {
            let (parsed, info) = parse_and_validate(module, reduction);
            for (i, entry) in parsed.entry_points.iter().enumerate() {
                let uses = info.get_entry_point(i);
                let bytes: u32 = parsed
                    .global_variables
                    .iter()
                    .filter(|&(handle, var)| {
                        var.space == naga::AddressSpace::WorkGroup && !uses[handle].is_empty()
                    })
                    .map(|(_, var)| parsed.types[var.ty].inner.size(parsed.to_ctx()))
                    .sum();
                assert!(
                    bytes <= DEFAULT_WORKGROUP_MEMORY,
                    "{}: {} uses {bytes} bytes of workgroup memory",
                    module.file_name(reduction),
                    entry.name
                );
            }
        }
    }
}
