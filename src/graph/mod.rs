//! The model as a static graph: IR types, the graph, a builder per architecture and printers.

mod builder;
mod edit;
mod gemma3;
mod ir;
mod llama;
mod print;

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction;

pub use builder::LogitRows;
pub use edit::GraphParts;
pub use ir::{
    CacheDecl, Cols, DType, Dim, Epilogue, Node, NormPrologue, Op, Rope, Step, TensorType, Weight,
};

use crate::gguf::GgufHeader;
use crate::model::{Architecture, ModelConfig};

/// Node ids are petgraph indices.
pub type NodeId = NodeIndex;

/// A dataflow graph of ops. Edges carry the input slot they feed. Serialised as
/// its [`GraphParts`] (a node list), checked when read back.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(into = "GraphParts", try_from = "GraphParts")]
pub struct Graph {
    nodes: DiGraph<Node, usize>,
    /// KV-cache state, indexed by `Op::CacheWrite::cache`.
    pub caches: Vec<CacheDecl>,
    /// The node whose value is the step's result (the logits).
    pub output: NodeId,
}

impl Graph {
    /// Builds the canonical graph of a model.
    pub fn build(config: &ModelConfig, header: &GgufHeader, logits: LogitRows) -> Graph {
        match config.architecture {
            Architecture::Llama => llama::build(config, header, logits),
            Architecture::Gemma3 => gemma3::build(config, header, logits),
        }
    }

    /// Adds a node fed by `inputs`, in order.
    pub fn add(
        &mut self,
        op: Op,
        ty: TensorType,
        label: impl Into<String>,
        inputs: &[NodeId],
    ) -> NodeId {
        let id = self.nodes.add_node(Node {
            op,
            ty,
            label: label.into(),
            replaces: Vec::new(),
        });
        for (slot, &input) in inputs.iter().enumerate() {
            self.nodes.add_edge(input, id, slot);
        }
        id
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    pub fn len(&self) -> usize {
        self.nodes.node_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The nodes feeding `id`, in slot order.
    pub fn inputs(&self, id: NodeId) -> Vec<NodeId> {
        let mut edges: Vec<(usize, NodeId)> = self
            .nodes
            .edges_directed(id, Direction::Incoming)
            .map(|e| (*e.weight(), e.source()))
            .collect();
        edges.sort_unstable();
        edges.into_iter().map(|(_, n)| n).collect()
    }

    /// How many nodes read `id`'s value.
    pub fn consumer_count(&self, id: NodeId) -> usize {
        self.nodes.edges_directed(id, Direction::Outgoing).count()
    }

    /// The nodes in the order they run. A node can only be added after its inputs,
    /// so insertion order is a topological order, and it keeps the model's reading order.
    pub fn schedule(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.nodes.node_indices()
    }
}
