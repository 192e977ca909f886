//! CPU dequantisation of every supported type to f32.
