//! The activation arena on the device. Lowering asks for each activation as a numbered
//! request; once every dispatch is known, an activation lives from the first dispatch
//! that binds it to the last (the output to the end of the step), and activations whose
//! lives do not overlap share bytes, placed by the compiler's interval colouring
//! ([`colour`]).
//!
//! The arena is a few banks, one buffer each. WebGPU lets a dispatch bind a buffer for
//! reading or for writing, never both, so what a dispatch writes lives in another bank
//! than what it reads; within a bank, offsets are aligned as storage bindings need.

use crate::compiler::buffers::{colour, Interval};

use super::shaders::Access;

/// An activation lowering asked for: an index into the arena's requests.
pub(super) type ActivationId = usize;

/// How one dispatch binds an activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Use {
    pub activation: ActivationId,
    pub access: Access,
}

/// Where each activation lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ArenaLayout {
    /// Per activation: its bank and its byte offset there (`None`: no dispatch binds it).
    pub slots: Vec<Option<(usize, u64)>>,
    /// Bytes of each bank.
    pub banks: Vec<u64>,
    /// Bytes of every bound activation in a buffer of its own: what sharing saves against.
    pub unshared: u64,
}

impl ArenaLayout {
    /// Places activations of `bytes` bound by `dispatches` (each a list of uses, in
    /// the order they run); `kept` stays live after the last.
    pub fn place(bytes: &[u64], dispatches: &[Vec<Use>], kept: ActivationId, align: u64) -> Self {
        let n = bytes.len();
        let mut life: Vec<Option<(usize, usize)>> = vec![None; n];
        for (i, uses) in dispatches.iter().enumerate() {
            for u in uses {
                let l = life[u.activation].get_or_insert((i, i));
                l.1 = i;
            }
        }
        if let Some(l) = &mut life[kept] {
            l.1 = dispatches.len();
        }
        let bank = banks(n, dispatches);
        let mut slots = vec![None; n];
        let mut sizes = Vec::new();
        for b in 0..bank.iter().max().map_or(0, |m| m + 1) {
            let members: Vec<usize> = (0..n)
                .filter(|&a| bank[a] == b && life[a].is_some())
                .collect();
            let intervals: Vec<Interval> = members
                .iter()
                .map(|&a| {
                    let (first, last) = life[a].expect("filtered on");
                    Interval {
                        first,
                        last,
                        bytes: bytes[a],
                    }
                })
                .collect();
            let (offsets, size) = colour(&intervals, align);
            for (&a, offset) in members.iter().zip(offsets) {
                slots[a] = Some((b, offset));
            }
            sizes.push(size);
        }
        let unshared = (0..n)
            .filter(|&a| life[a].is_some())
            .map(|a| bytes[a])
            .sum();
        ArenaLayout {
            slots,
            banks: sizes,
            unshared,
        }
    }

    pub fn bytes(&self) -> u64 {
        self.banks.iter().sum()
    }
}

/// A bank per activation: the lowest that no activation it is read or written beside in
/// one dispatch, the other way, already has.
fn banks(n: usize, dispatches: &[Vec<Use>]) -> Vec<usize> {
    let mut apart: Vec<Vec<ActivationId>> = vec![Vec::new(); n];
    for uses in dispatches {
        for w in uses.iter().filter(|u| u.access == Access::ReadWrite) {
            for r in uses.iter().filter(|u| u.access == Access::Read) {
                apart[w.activation].push(r.activation);
                apart[r.activation].push(w.activation);
            }
        }
    }
    let mut bank: Vec<Option<usize>> = vec![None; n];
    for a in 0..n {
        let taken: Vec<usize> = apart[a].iter().filter_map(|&o| bank[o]).collect();
        bank[a] = (0..).find(|b| !taken.contains(b));
    }
    bank.into_iter().map(|b| b.unwrap_or(0)).collect()
}

/// The arena's banks on the device, and where each activation lives in them.
pub(super) struct Arena {
    layout: ArenaLayout,
    /// Bytes each activation binds.
    bytes: Vec<u64>,
    banks: Vec<wgpu::Buffer>,
}

impl Arena {
    /// The banks of `layout`, made by `make(label, bytes)`.
    pub fn new(
        layout: ArenaLayout,
        bytes: Vec<u64>,
        mut make: impl FnMut(&str, u64) -> wgpu::Buffer,
    ) -> Arena {
        let banks = layout
            .banks
            .iter()
            .enumerate()
            // A bank nobody binds still needs a valid size.
            .map(|(b, &size)| make(&format!("activations, bank {b}"), size.max(16)))
            .collect();
        Arena {
            layout,
            bytes,
            banks,
        }
    }

    /// The buffer and byte range activation `a` lives in. Only activations a dispatch
    /// binds have a place; lowering refers to no other.
    pub fn region(&self, a: ActivationId) -> (&wgpu::Buffer, u64, u64) {
        let (bank, offset) = self.layout.slots[a].expect("a bound activation has a place");
        (&self.banks[bank], offset, self.bytes[a])
    }

    /// Activation `a` as a binding: its range of its bank.
    pub fn binding(&self, a: ActivationId) -> wgpu::BindingResource<'_> {
        let (buffer, offset, size) = self.region(a);
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer,
            offset,
            size: wgpu::BufferSize::new(size),
        })
    }

    /// Bytes of its banks, and of its activations had each a buffer of its own.
    pub fn bytes(&self) -> (u64, u64) {
        (self.layout.bytes(), self.layout.unshared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::SplitMix64;
    use Access::{Read, ReadWrite};

    fn uses(reads: &[usize], writes: &[usize]) -> Vec<Use> {
        let read = reads.iter().map(|&activation| Use {
            activation,
            access: Read,
        });
        let write = writes.iter().map(|&activation| Use {
            activation,
            access: ReadWrite,
        });
        read.chain(write).collect()
    }

    #[test]
    fn a_chain_alternates_two_banks_and_reuses_their_bytes() {
        // 0 → 1 → 2 → 3 → 4, each 1 KiB.
        let dispatches: Vec<Vec<Use>> = (0..4).map(|i| uses(&[i], &[i + 1])).collect();
        let layout = ArenaLayout::place(&[1024; 5], &dispatches, 4, 256);
        assert_eq!(layout.banks, vec![1024, 1024]);
        let banks: Vec<usize> = layout.slots.iter().map(|s| s.unwrap().0).collect();
        assert_eq!(banks, [0, 1, 0, 1, 0]);
    }

    #[test]
    fn no_dispatch_reads_a_bank_it_writes_and_live_bytes_never_meet() {
        let mut rng = SplitMix64::new(11);
        let pick = |rng: &mut SplitMix64, below: usize| (rng.next_u64() % below as u64) as usize;
        for _ in 0..50 {
            let n = 40;
            let bytes: Vec<u64> = (0..n)
                .map(|_| 4 * (1 + pick(&mut rng, 500) as u64))
                .collect();
            // Dispatch i writes activation i + 2 from up to three earlier ones.
            let dispatches: Vec<Vec<Use>> = (0..n - 2)
                .map(|i| {
                    let reads: Vec<usize> = (0..1 + pick(&mut rng, 3))
                        .map(|_| pick(&mut rng, i + 2))
                        .collect();
                    uses(&reads, &[i + 2])
                })
                .collect();
            let layout = ArenaLayout::place(&bytes, &dispatches, n - 1, 64);
            let live = |a: usize| -> (usize, usize) {
                let at: Vec<usize> = (0..dispatches.len())
                    .filter(|&i| dispatches[i].iter().any(|u| u.activation == a))
                    .collect();
                let last = if a == n - 1 {
                    dispatches.len()
                } else {
                    at[at.len() - 1]
                };
                (at[0], last)
            };
            for uses in &dispatches {
                for w in uses.iter().filter(|u| u.access == ReadWrite) {
                    for r in uses.iter().filter(|u| u.access == Read) {
                        let bank = |a: usize| layout.slots[a].unwrap().0;
                        assert_ne!(bank(w.activation), bank(r.activation));
                    }
                }
            }
            let used: Vec<usize> = (0..n).filter(|&a| layout.slots[a].is_some()).collect();
            for (i, &a) in used.iter().enumerate() {
                let (bank, offset) = layout.slots[a].unwrap();
                assert_eq!(offset % 64, 0);
                assert!(offset + bytes[a] <= layout.banks[bank]);
                for &b in &used[i + 1..] {
                    let (other_bank, other) = layout.slots[b].unwrap();
                    let ((f1, l1), (f2, l2)) = (live(a), live(b));
                    let together = f1 <= l2 && f2 <= l1;
                    let share = offset < other + bytes[b] && other < offset + bytes[a];
                    assert!(
                        !(together && bank == other_bank && share),
                        "{a} and {b} share bytes while both live"
                    );
                }
            }
            assert!(layout.bytes() < layout.unshared);
            assert!(layout.unshared <= bytes.iter().sum::<u64>());
        }
    }
}
