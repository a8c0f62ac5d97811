"""Per-call cost of ``rulebook.Client`` (answered in-process) against the same calls over HTTP
from Python, and of ``Client.evaluate`` against the seed-style evaluation in Python
(json-logic-qubit over the same rules), measured in one run: compare the ratios, not the
nanoseconds across runs. Then the replica's lag: a write over HTTP, polled for from Python.

The 50 rules are ``rulebook_rules::examples::benchmark_rules()`` (entry point ``checkout``, the
rules the Rust benchmarks evaluate), printed by the rules crate's ``benchmark_rules`` example
and imported into a fresh server, so both sides evaluate the very same documents.

Run from the repository root after scripts/python-test has built the package, with a release
server (the HTTP figures of a debug server mean nothing):

    cargo build --release -p rulebook
    .venv/bin/python -m pip install httpx json-logic-qubit
    .venv/bin/python clients/python/bench/client_bench.py

``RULEBOOK_BIN`` names another server binary. The server runs on SQLite in a temporary
directory, on a free port, with the admin token below; it is stopped at the end.

The split of ``evaluate``, in three: ``time_evaluation`` times the evaluation alone inside Rust
(the context converted once, the answers kept as the rules crate returns them);
``time_conversion`` times the context's conversion and the answer's Python objects, made and
freed; the rest of a call is the interpreter, the arguments and the GIL released and taken back.
The figures are in clients/python/README.md ("Figures"): ``evaluate`` about 50x the seed-style
evaluation, the conversion 0.98x to 1.03x the evaluation and the rest of the call 0.8 to 0.9 us,
param and flag reads over 1,500x the HTTP call.
"""

from __future__ import annotations

import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from json_logic import jsonLogic

import rulebook

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "client-bench-admin-token"
ENTRY_POINT = "checkout"
PARAM_RULE = "checkout_rule_07"
CONTEXTS = 64
ROUNDS = 60
LAG_WRITES = 300


def race(contenders: dict[str, tuple[Callable[[], object], int]]) -> dict[str, float]:
    """Nanoseconds per call of each contender (a function and how many calls make one batch of
    a few milliseconds): ROUNDS rounds, each running one batch of every contender in turn, and
    the fastest batch of each. Short interleaved batches let every contender meet the same
    load, so the ratios hold on a busy machine."""
    best = dict.fromkeys(contenders, float("inf"))
    for _ in range(ROUNDS):
        for name, (call, calls) in contenders.items():
            start = time.perf_counter_ns()
            for _ in range(calls):
                call()
            best[name] = min(best[name], (time.perf_counter_ns() - start) / calls)
    return best


def cycle(items: list[Any]) -> Callable[[], Any]:
    """A function returning the next item of ``items`` at each call, round and round."""
    state = {"i": 0}

    def next_item() -> Any:
        state["i"] = (state["i"] + 1) % len(items)
        return items[state["i"]]

    return next_item


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(db: Path) -> tuple[subprocess.Popen, str]:
    named = os.environ.get("RULEBOOK_BIN")
    binary = Path(named) if named else ROOT / "target" / "release" / "rulebook"
    if not binary.is_file():
        sys.exit(f"{binary} is missing: run `cargo build --release -p rulebook` first")
    port = free_port()
    env = dict(os.environ, RULEBOOK_LOG="warn", RULEBOOK_ADMIN_TOKEN=TOKEN)
    process = subprocess.Popen(
        [binary, "serve", "--listen", f"127.0.0.1:{port}", "--database-url", str(db)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("rulebook serving http://"):
        process.kill()
        sys.exit(f"the server did not start: {line!r}")
    return process, f"http://127.0.0.1:{port}"


def benchmark_rules() -> list[dict[str, Any]]:
    command = ["cargo", "run", "-q", "-p", "rulebook-rules", "--example", "benchmark_rules"]
    return json.loads(subprocess.run(command, cwd=ROOT, check=True, capture_output=True).stdout)


def contexts() -> list[dict[str, Any]]:
    """Checkout contexts from a fixed seed: some match many rules, some few."""
    rng = random.Random(50)
    made = []
    for _ in range(CONTEXTS):
        cart: dict[str, Any] = {"total": rng.choice([0, 45, 120, 260, 499.5, 900])}
        if rng.random() < 0.5:
            cart["coupon"] = rng.choice(["BLOCKED", "SPRING", "EXPIRED", "WELCOME"])
        made.append({"country": rng.choice(["GB", "DE", "FR", "US", "C7", "C31"]), "cart": cart})
    return made


def seed_style(rules: list[dict[str, Any]]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The seeds' way: the entry point's active rules (already loaded, sorted by priority, as
    their caches held them), each condition run by json-logic against the context and the
    rule's params, then each matched rule's computed action fields."""
    ordered = sorted(
        (r for r in rules if r.get("enabled", True)), key=lambda r: (r["priority"], r["id"])
    )

    def evaluate(context: dict[str, Any]) -> dict[str, Any]:
        matched, actions = [], []
        for rule in ordered:
            data = dict(context, params=rule.get("params", {}))
            if not jsonLogic(rule["condition"], data):
                continue
            matched.append({"id": rule["id"], "version": rule.get("version", 1)})
            for action in rule["actions"]:
                fired = {"rule_id": rule["id"]}
                for field, value in action.items():
                    is_logic = isinstance(value, dict) and len(value) == 1
                    fired[field] = jsonLogic(value, data) if is_logic else value
                actions.append(fired)
            if rule.get("stop_processing"):
                break
        return {"entry_point": ENTRY_POINT, "matched": matched, "actions": actions}

    return evaluate


def lag(client: rulebook.Client, http: httpx.Client) -> tuple[list[float], list[float]]:
    """For LAG_WRITES writes over HTTP: microseconds from sending the write, and from its
    answer, to the first replica read showing it (the replica polled in a tight loop)."""
    from_send, from_answer = [], []
    for i in range(LAG_WRITES):
        value = 1000 + i
        sent = time.perf_counter()
        answer = http.patch(
            f"/v1/rules/{PARAM_RULE}/params", json={"params": {"rate": value}}
        ).raise_for_status()
        answered = time.perf_counter()
        deadline = answered + 10
        while client.get_value(PARAM_RULE, "rate") != value:
            if time.perf_counter() > deadline:
                sys.exit(f"the replica did not show write {answer.json()['seq']} within 10 s")
        seen = time.perf_counter()
        from_send.append((seen - sent) * 1e6)
        from_answer.append((seen - answered) * 1e6)
        time.sleep(0.002)
    return from_send, from_answer


def best_batch(samples: list[float], size: int) -> float:
    """The lowest mean of consecutive batches of ``size`` samples (one batch of ``race``)."""
    return min(statistics.mean(samples[i : i + size]) for i in range(0, len(samples), size))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    rules = benchmark_rules()
    with tempfile.TemporaryDirectory(prefix="rulebook-bench-") as tmp:
        process, url = start_server(Path(tmp) / "rules.db")
        try:
            run(url, rules)
        finally:
            process.kill()
            process.wait()


def run(url: str, rules: list[dict[str, Any]]) -> None:
    client = rulebook.Client(url, token=TOKEN)
    imported = client.rules.import_(rules, reason="client benchmark")
    assert imported["created"] == len(rules) == 50, imported
    headers = {"Authorization": f"Bearer {TOKEN}"}
    http = httpx.Client(base_url=url, headers=headers)  # one keep-alive connection
    samples = contexts()
    seed = seed_style(rules)

    # The same answers on every side before anything is timed.
    for context in samples:
        local = client.evaluate(ENTRY_POINT, context)
        remote = http.post(f"/v1/evaluate/{ENTRY_POINT}", json={"context": context}).json()
        assert local["matched"] == remote["matched"] and local["actions"] == remote["actions"]
        python = seed(context)
        assert [m["id"] for m in python["matched"]] == [m["id"] for m in local["matched"]]
        assert len(python["actions"]) == len(local["actions"])
    matched = statistics.mean(len(client.evaluate(ENTRY_POINT, c)["matched"]) for c in samples)

    next_context = cycle(samples)
    param_path = f"/v1/params/{PARAM_RULE}/rate"
    enabled_path = f"/v1/rules/{PARAM_RULE}/enabled"
    evaluate_path = f"/v1/evaluate/{ENTRY_POINT}"
    native = client._native
    reported: list[float] = []
    converted: list[float] = []

    def timed_evaluation() -> None:
        reported.append(native.time_evaluation(ENTRY_POINT, next_context(), 1))

    def timed_conversion() -> None:
        converted.append(native.time_conversion(ENTRY_POINT, next_context(), 1))

    # Every batch of the evaluations covers whole cycles of the contexts: the same mix on each side.
    times = race(
        {
            "get_value": (lambda: client.get_value(PARAM_RULE, "rate"), 5_000),
            "get_value http": (lambda: http.get(param_path).json()["value"], 20),
            "is_enabled": (lambda: client.is_enabled(PARAM_RULE), 5_000),
            "is_enabled http": (lambda: http.get(enabled_path).json()["enabled"], 20),
            "evaluate": (lambda: client.evaluate(ENTRY_POINT, next_context()), 4 * CONTEXTS),
            "evaluate http": (
                lambda: http.post(evaluate_path, json={"context": next_context()}).json(),
                CONTEXTS,
            ),
            "seed-style": (lambda: seed(next_context()), CONTEXTS),
            "evaluation": (timed_evaluation, 4 * CONTEXTS),
            "conversion": (timed_conversion, 4 * CONTEXTS),
        }
    )
    # The evaluation alone and the conversions alone, by the Rust side's own clock: the best
    # batch's mean of each.
    evaluation_ns = best_batch(reported, 4 * CONTEXTS)
    conversion_ns = best_batch(converted, 4 * CONTEXTS)
    figures = {
        name: (times[name], times[f"{name} http"])
        for name in ("get_value", "is_enabled", "evaluate")
    }
    python_ns = times["seed-style"]
    from_send, from_answer = lag(client, http)

    print(f"50 rules at `{ENTRY_POINT}`, {CONTEXTS} contexts ({matched:.1f} rules matched on")
    print(f"average); server {url} on SQLite; HTTP with httpx, one keep-alive connection.\n")
    print("| call | rulebook.Client (in-process) | over HTTP | ratio |")
    print("|---|---|---|---|")
    for name, (local_ns, http_ns) in figures.items():
        print(f"| `{name}` | {local_ns:,.0f} ns | {http_ns:,.0f} ns | {http_ns / local_ns:,.0f}x |")
    evaluate_ns = figures["evaluate"][0]
    print()
    print("| `evaluate`, in-process | per call | ratio |")
    print("|---|---|---|")
    print(f"| rulebook.Client.evaluate | {evaluate_ns:,.0f} ns | 1x |")
    print(f"| seed-style json-logic-qubit | {python_ns:,.0f} ns | {python_ns / evaluate_ns:.1f}x |")
    call_ns = evaluate_ns - evaluation_ns - conversion_ns
    print()
    print(f"split of `evaluate` ({evaluate_ns:,.0f} ns):")
    print(f"  the evaluation: {evaluation_ns:,.0f} ns")
    print(
        f"  the conversion of the context and the answer (made and freed): {conversion_ns:,.0f} ns"
        f" ({conversion_ns / evaluation_ns:.2f}x the evaluation)"
    )
    print(f"  the rest of the call (interpreter, arguments, GIL): {call_ns:,.0f} ns")
    print(
        f"  the conversion and the rest together: {conversion_ns + call_ns:,.0f} ns"
        f" ({(conversion_ns + call_ns) / evaluation_ns:.2f}x the evaluation)"
    )
    print()
    print(f"replica lag over {LAG_WRITES} writes (PATCH params over HTTP, then get_value polled):")
    for name, values in (("from the write's answer", from_answer), ("from sending", from_send)):
        p50, p99 = percentile(values, 50), percentile(values, 99)
        print(f"  {name}: p50 {p50:,.0f} us, p99 {p99:,.0f} us, max {max(values):,.0f} us")


if __name__ == "__main__":
    main()
