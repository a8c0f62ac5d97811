//! Fuzz target `jsonlogic`: see `rulebook_fuzz_checks::jsonlogic` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rulebook_fuzz_checks::jsonlogic(data));
