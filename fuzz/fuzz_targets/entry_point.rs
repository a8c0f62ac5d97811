//! Fuzz target `entry_point`: see `rulebook_fuzz_checks::entry_point` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rulebook_fuzz_checks::entry_point(data));
