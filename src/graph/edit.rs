//! Editing a graph in place, as the compiler's passes do: change a node, rewire its
//! inputs or its readers, then `compact` away what no longer feeds the output.
//! Also the graph's serialisable form (a node list), used by the plan file.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use petgraph::visit::EdgeRef;
use petgraph::Direction;
use serde::{Deserialize, Serialize};

use super::ir::{CacheDecl, Node};
use super::{Graph, NodeId};

impl Graph {
    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.nodes[id]
    }

    /// The nodes reading `id`'s value (one entry per edge, in edge order).
    pub fn consumers(&self, id: NodeId) -> Vec<NodeId> {
        let mut readers: Vec<NodeId> = self
            .nodes
            .edges_directed(id, Direction::Outgoing)
            .map(|e| e.target())
            .collect();
        readers.sort_unstable();
        readers
    }

    /// The single node reading `id`, when there is exactly one (and `id` is not the output).
    pub fn sole_consumer(&self, id: NodeId) -> Option<NodeId> {
        match self.consumers(id).as_slice() {
            [only] if id != self.output => Some(*only),
            _ => None,
        }
    }

    /// Replaces `id`'s inputs by `inputs`, in slot order.
    pub fn set_inputs(&mut self, id: NodeId, inputs: &[NodeId]) {
        let old: Vec<_> = self
            .nodes
            .edges_directed(id, Direction::Incoming)
            .map(|e| e.id())
            .collect();
        // Removing an edge moves the last edge into its index: remove from the back.
        let mut old = old;
        old.sort_unstable_by(|a, b| b.cmp(a));
        for e in old {
            self.nodes.remove_edge(e);
        }
        for (slot, &input) in inputs.iter().enumerate() {
            self.nodes.add_edge(input, id, slot);
        }
    }

    /// Makes every reader of `old` (and the output, if `old` is it) read `new` instead.
    pub fn replace_uses(&mut self, old: NodeId, new: NodeId) {
        for reader in self.consumers(old) {
            if reader == new {
                continue;
            }
            let inputs: Vec<NodeId> = self
                .inputs(reader)
                .into_iter()
                .map(|i| if i == old { new } else { i })
                .collect();
            self.set_inputs(reader, &inputs);
        }
        if self.output == old {
            self.output = new;
        }
    }

    /// A copy without the nodes that no longer feed the output, renumbered so that
    /// insertion order is again the schedule: a topological order that keeps the
    /// earlier order wherever the edges allow (so the model still reads top to bottom).
    pub fn compact(&self) -> Graph {
        let n = self.len();
        let mut live = vec![false; n];
        let mut stack = vec![self.output];
        while let Some(id) = stack.pop() {
            if !std::mem::replace(&mut live[id.index()], true) {
                stack.extend(self.inputs(id));
            }
        }
        let mut waiting: Vec<usize> = (0..n)
            .map(|i| {
                let id = NodeId::new(i);
                self.inputs(id).iter().filter(|x| live[x.index()]).count()
            })
            .collect();
        let mut ready: BinaryHeap<Reverse<usize>> = (0..n)
            .filter(|&i| live[i] && waiting[i] == 0)
            .map(Reverse)
            .collect();
        let mut new_id: Vec<Option<NodeId>> = vec![None; n];
        let mut out = Graph {
            caches: self.caches.clone(),
            ..Graph::default()
        };
        while let Some(Reverse(i)) = ready.pop() {
            let id = NodeId::new(i);
            let inputs: Vec<NodeId> = self
                .inputs(id)
                .iter()
                .map(|x| new_id[x.index()].expect("inputs are placed first"))
                .collect();
            let node = self.node(id).clone();
            let placed = out.nodes.add_node(node);
            for (slot, input) in inputs.into_iter().enumerate() {
                out.nodes.add_edge(input, placed, slot);
            }
            new_id[i] = Some(placed);
            for reader in self.consumers(id) {
                waiting[reader.index()] -= 1;
                if live[reader.index()] && waiting[reader.index()] == 0 {
                    ready.push(Reverse(reader.index()));
                }
            }
        }
        out.output = new_id[self.output.index()].expect("the output is live");
        out
    }

    pub fn to_parts(&self) -> GraphParts {
        GraphParts {
            nodes: self
                .schedule()
                .map(|id| PartNode {
                    node: self.node(id).clone(),
                    inputs: self.inputs(id).iter().map(|i| i.index()).collect(),
                })
                .collect(),
            caches: self.caches.clone(),
            output: self.output.index(),
        }
    }

    /// Rebuilds a graph from its parts, checking that every input names an earlier
    /// node, every cache index exists and the output is a node.
    pub fn from_parts(parts: GraphParts) -> Result<Graph, String> {
        let mut g = Graph {
            caches: parts.caches,
            ..Graph::default()
        };
        for (i, part) in parts.nodes.into_iter().enumerate() {
            if let Some(bad) = part.inputs.iter().find(|&&x| x >= i) {
                return Err(format!(
                    "node {i} reads node {bad}, which does not precede it"
                ));
            }
            if part.inputs.len() != part.node.op.arity() {
                return Err(format!(
                    "node {i} ({}) has {} inputs, expected {}",
                    part.node.op.name(),
                    part.inputs.len(),
                    part.node.op.arity()
                ));
            }
            let cache_ids = match &part.node.op {
                super::Op::CacheWrite { cache } => vec![*cache],
                super::Op::Attention {
                    k_cache, v_cache, ..
                } => vec![*k_cache, *v_cache],
                _ => vec![],
            };
            if let Some(bad) = cache_ids.iter().find(|&&c| c >= g.caches.len()) {
                return Err(format!("node {i} names cache {bad}, which is not declared"));
            }
            let id = g.nodes.add_node(part.node);
            for (slot, input) in part.inputs.into_iter().enumerate() {
                g.nodes.add_edge(NodeId::new(input), id, slot);
            }
        }
        if parts.output >= g.len() {
            return Err(format!("the output node {} does not exist", parts.output));
        }
        g.output = NodeId::new(parts.output);
        Ok(g)
    }
}

impl From<Graph> for GraphParts {
    fn from(g: Graph) -> GraphParts {
        g.to_parts()
    }
}

impl TryFrom<GraphParts> for Graph {
    type Error = String;

    fn try_from(parts: GraphParts) -> Result<Graph, String> {
        Graph::from_parts(parts)
    }
}

/// A graph as plain data: its nodes in schedule order, each with the indices of
/// its inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphParts {
    pub nodes: Vec<PartNode>,
    pub caches: Vec<CacheDecl>,
    pub output: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartNode {
    #[serde(flatten)]
    pub node: Node,
    pub inputs: Vec<usize>,
}
