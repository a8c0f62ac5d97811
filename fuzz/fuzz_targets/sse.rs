//! Fuzz target `sse`: see `rulebook_fuzz_checks::sse` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rulebook_fuzz_checks::sse(data));
