//! Replays every committed fuzz input (`corpus/<target>/*`: the seed corpora and every crash the
//! fuzzer found) through its target's check, on stable, as part of `cargo test`.

use std::path::Path;

use rulebook_fuzz_checks::TARGETS;

#[test]
fn every_committed_fuzz_input_passes_its_check() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut failures = Vec::new();
    for (target, check) in TARGETS {
        let dir = corpus.join(target);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
            .map(|entry| entry.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        inputs.sort();
        assert!(!inputs.is_empty(), "{} has no inputs", dir.display());
        for input in inputs {
            let data = std::fs::read(&input)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", input.display()));
            if std::panic::catch_unwind(|| check(&data)).is_err() {
                failures.push(input.display().to_string());
            }
        }
    }
    assert!(failures.is_empty(), "failing inputs: {failures:#?}");
}
