//! Model hyper-parameters per architecture.

mod config;

pub use config::{
    Activation, Architecture, ConfigError, LayerAttention, ModelConfig, RopeMode,
    SUPPORTED_ARCHITECTURES,
};
