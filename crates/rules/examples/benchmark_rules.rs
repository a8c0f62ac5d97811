//! Prints [`rulebook_rules::examples::benchmark_rules`] as a JSON array of rule documents, so a
//! benchmark outside Rust (clients/python/bench/client_bench.py) imports the very rules the
//! Rust benchmarks evaluate: `cargo run -q -p rulebook-rules --example benchmark_rules`.

fn main() -> Result<(), serde_json::Error> {
    let rules = rulebook_rules::examples::benchmark_rules();
    println!("{}", serde_json::to_string_pretty(&rules)?);
    Ok(())
}
