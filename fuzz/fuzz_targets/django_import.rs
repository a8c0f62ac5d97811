//! Fuzz target `django_import`: see `rulebook_fuzz_checks::django_import` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rulebook_fuzz_checks::django_import(data));
