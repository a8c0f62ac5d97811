//! Fuzz target `rule_documents`: see `rulebook_fuzz_checks::rule_documents` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rulebook_fuzz_checks::rule_documents(data));
