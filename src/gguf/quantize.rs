//! Quantisers from f32 into Q8_0, Q4_0, Q4_K and Q6_K.
