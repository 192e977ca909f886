//! Feeds arbitrary bytes to the GGUF header parser: it must return, quickly, without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rustorch::gguf::GgufHeader::parse(data);
});
