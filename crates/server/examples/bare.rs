//! The HTTP floor for `scripts/bench-http`: a bare axum handler on Rulebook's evaluate route that
//! parses the same JSON body and answers a fixed JSON, with nothing else (no store, no
//! middleware). The load benchmark's `ceiling` phase is the same handler in-process.
//!
//! `cargo run --release -p rulebook --example bare -- 127.0.0.1:8091` (the default address).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8091".to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let app = Router::new().route(
            "/v1/evaluate/{entry_point}",
            post(|Json(body): Json<Value>| async move {
                std::hint::black_box(&body);
                Json(json!({"entry_point": "load_test", "matched": [], "actions": []}))
            }),
        );
        let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
        println!("bare floor listening on http://{addr}");
        axum::serve(listener, app).await.unwrap();
    });
}
