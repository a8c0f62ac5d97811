//! Differential test: generated JSONLogic expressions and data run through Rulebook and through
//! json-logic-js 2.0.5 itself (the reference implementation, run by node from
//! `tests/jsonlogic-js`), and the answers compared: [`Logic::evaluate`]'s value, and whether the
//! same expression as a rule's condition (the boolean path a ruleset uses) matches exactly when
//! json-logic-js's value is truthy.
//!
//! Every case goes into one JSON lines file, which one node process (`run.js`) answers. A
//! difference passes only when the case meets a row of the README's table "Differences from
//! json-logic-js" ([`DOCUMENTED`]); `run.js` reports which rows a case met as it evaluated it
//! (an operation that gave `undefined` or a number that is not finite, say), so a fault hiding in
//! the same case as a documented difference is excused, and any other fails the test.
//!
//! `RULEBOOK_DIFF_CASES` sets the number of cases (3,000 by default) and `RULEBOOK_DIFF_SEED` the
//! seed. With `CI=true` a missing node or harness fails the test with the fix; elsewhere the test
//! says why it skips.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod reference;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use chrono::{TimeZone, Utc};
use rulebook_rules::logic::Logic;
use rulebook_rules::{EntryPoint, Limits, Rule, Ruleset};
use serde_json::{json, Map, Value};

const HARNESS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/jsonlogic-js");
const README: &str = include_str!("../README.md");
const FIX: &str = "npm ci --prefix crates/rules/tests/jsonlogic-js";

/// The flags that excuse a difference, each with the first cell of the README row that says why.
const DOCUMENTED: &[(&str, &str)] = &[
    ("non-finite", "A number that is not finite"),
    ("undefined", "`undefined`"),
    ("identity", "Two lists or two objects"),
    ("lone-surrogate", "Half of a surrogate pair"),
    ("big-integer", "Integers beyond 2^53"),
    ("empty-product", "`{\"*\": []}`"),
];

/// The README row that [`same`] follows for `-0`, which needs no flag: compared as JSON writes
/// it, Rulebook's `0` is json-logic-js's `-0`.
const COMPARED_AS_JSON_WRITES_IT: &str = "`-0`";

/// Whether tests run in CI, by the workspace's policy (`rulebook_testkit::in_ci`, which this
/// crate cannot depend on: the test kit depends on it).
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Outside CI, prints why and gives `None`; in CI, fails with the fix.
fn unavailable<T>(problem: &str) -> Option<T> {
    assert!(
        !in_ci(),
        "CI=true and json-logic-js cannot run: {problem}; install it with `{FIX}`"
    );
    println!("skipping: json-logic-js cannot run ({problem}); install it with `{FIX}`");
    None
}

/// A small, fixed pseudo-random generator (SplitMix64), so a seed names its cases everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
}

/// Numbers where JavaScript's conversions to text and back are easy to get wrong.
fn tricky_number(rng: &mut Rng) -> Value {
    let numbers: &[fn() -> Value] = &[
        || json!(0),
        || json!(-0.0),
        || json!(1),
        || json!(-1),
        || json!(2),
        || json!(3),
        || json!(10),
        || json!(16),
        || json!(0.1),
        || json!(0.5),
        || json!(1.5),
        || json!(-2.5),
        || json!(1e21),
        || json!(1e-7),
        || json!(0.000001),
        || json!(123456789.125),
        || json!(1e300),
        || json!(5e-324),
        || json!(9007199254740992_i64),
        // 2^53 + 1: JavaScript reads it as 2^53, Rulebook keeps it (a documented difference).
        || json!(9007199254740993_i64),
        || json!(1000),
    ];
    rng.pick(numbers)()
}

/// Strings JavaScript reads as numbers (or not) in surprising ways, and texts with characters
/// outside ASCII and outside the Basic Multilingual Plane.
const STRINGS: &[&str] = &[
    "",
    "0",
    "1",
    "-1",
    "3",
    "12",
    "abc",
    "a",
    "b",
    "0x10",
    "0X1f",
    "0b11",
    "0o17",
    "-0x10",
    " 12 ",
    "\u{feff}12",
    "\u{a0}7\u{2028}",
    "\u{85}3",
    "\t\n5\r",
    "1e3",
    "1E3",
    ".5",
    "5.",
    "1.e3",
    "+4",
    "Infinity",
    "-Infinity",
    "+Infinity",
    "inf",
    "INFINITY",
    "infinity",
    "NaN",
    "12abc",
    "1_000",
    "1,2",
    "null",
    "true",
    "aé",
    "é",
    "😀x",
    "x😀",
    "\u{e000}",
    "\u{ffff}z",
    "a.b",
    "list",
    "s",
];

fn tricky_string(rng: &mut Rng) -> Value {
    json!(rng.pick(STRINGS))
}

fn scalar(rng: &mut Rng) -> Value {
    match rng.below(10) {
        0..=3 => tricky_number(rng),
        4..=7 => tricky_string(rng),
        8 => Value::Null,
        _ => json!(rng.chance(50)),
    }
}

fn value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth == 0 { 6 } else { 8 }) {
        0..=5 => scalar(rng),
        6 => Value::Array((0..rng.below(4)).map(|_| value(rng, depth - 1)).collect()),
        _ => {
            let mut m = Map::new();
            for key in ["x", "y", "0"] {
                if rng.chance(60) {
                    m.insert(key.into(), value(rng, depth - 1));
                }
            }
            // An object with one key would be an operation, not data, in an expression.
            if m.len() == 1 {
                m.insert("z".into(), scalar(rng));
            }
            Value::Object(m)
        }
    }
}

/// The names data objects use; each is there or not, with any kind of value.
const KEYS: &[&str] = &["a", "b", "n", "s", "z", "list", "obj", "1", "p"];

fn data(rng: &mut Rng) -> Value {
    let mut m = Map::new();
    for key in KEYS {
        if rng.chance(80) {
            let v = match *key {
                "list" => Value::Array((0..rng.below(5)).map(|_| value(rng, 1)).collect()),
                "obj" => value(rng, 2),
                "z" => Value::Null,
                "s" => tricky_string(rng),
                "n" => tricky_number(rng),
                // A path, for `var` with a computed path.
                "p" => json!(rng.pick(&["list.1", "a", "obj.x", "", "s.length", "nope"])),
                _ => value(rng, 2),
            };
            m.insert((*key).into(), v);
        }
    }
    Value::Object(m)
}

/// What `var` reads where an expression stands.
#[derive(Clone, Copy, PartialEq)]
enum Scope {
    /// The case's data object.
    Top,
    /// An element of a list (`map`, `filter`, `all`, `some`, `none`): any value.
    Item,
    /// `reduce`'s `{"current": ..., "accumulator": ...}`.
    Reduce,
}

struct Generator {
    rng: Rng,
    /// Whether the expression reads the whole data of the case (`{"var": ""}` outside a list's
    /// elements): a rule's scope has no such single value, so the condition path is not asked.
    reads_whole_data: bool,
}

impl Generator {
    fn path(&mut self, scope: Scope) -> Value {
        let rng = &mut self.rng;
        let path = match scope {
            Scope::Top => rng.pick(&[
                json!("a"),
                json!("b"),
                json!("n"),
                json!("s"),
                json!("z"),
                json!("z.x"),
                json!("list"),
                json!("list.0"),
                json!("list.1"),
                json!("list.01"),
                json!("list.length"),
                json!("s.0"),
                json!("s.1"),
                json!("s.length"),
                json!("obj"),
                json!("obj.x"),
                json!("obj.y.0"),
                json!("obj.0"),
                json!("a.x"),
                json!("nope"),
                json!("nope.deeper"),
                json!(1),
                json!(1.5),
                json!(""),
                Value::Null,
            ]),
            Scope::Item => rng.pick(&[
                json!(""),
                json!("x"),
                json!("y"),
                json!("0"),
                json!("1"),
                json!("length"),
                json!("y.0"),
                json!(0),
            ]),
            Scope::Reduce => rng.pick(&[
                json!("current"),
                json!("accumulator"),
                json!("current.x"),
                json!("current.length"),
                json!("accumulator.0"),
                json!("nope"),
            ]),
        };
        if scope == Scope::Top && (path.is_null() || path == json!("")) {
            self.reads_whole_data = true;
        }
        path
    }

    fn var(&mut self, scope: Scope, depth: usize) -> Value {
        let path = if scope == Scope::Top && self.rng.chance(5) {
            // A computed path: one the data names, or one put together.
            if self.rng.chance(50) {
                // `p` may hold "", the whole data.
                self.reads_whole_data = true;
                json!({"var": "p"})
            } else {
                json!({"cat": ["li", "st.", self.rng.pick(&["0", "1", "length"])]})
            }
        } else {
            self.path(scope)
        };
        match self.rng.below(3) {
            0 => json!({ "var": path }),
            1 => json!({ "var": [path] }),
            _ => json!({ "var": [path, self.expr(scope, depth.saturating_sub(1))] }),
        }
    }

    fn leaf(&mut self, scope: Scope) -> Value {
        match self.rng.below(10) {
            0..=3 => scalar(&mut self.rng),
            4..=8 => self.var(scope, 0),
            _ => value(&mut self.rng, 1),
        }
    }

    fn args(&mut self, scope: Scope, depth: usize, counts: &[usize]) -> Vec<Value> {
        let n = self.rng.pick(counts);
        (0..n).map(|_| self.expr(scope, depth - 1)).collect()
    }

    /// A list to iterate over: one from the data, a literal one, or one computed.
    fn list(&mut self, scope: Scope, depth: usize) -> Value {
        match self.rng.below(5) {
            0 | 1 if scope == Scope::Top => self.var(scope, depth),
            0 | 1 => json!({"var": ""}),
            2 => Value::Array(
                (0..self.rng.below(4))
                    .map(|_| scalar(&mut self.rng))
                    .collect(),
            ),
            3 => json!({"merge": self.args(scope, depth, &[1, 2])}),
            _ => self.expr(scope, depth - 1),
        }
    }

    fn expr(&mut self, scope: Scope, depth: usize) -> Value {
        if depth == 0 || self.rng.chance(25) {
            return self.leaf(scope);
        }
        let op = self.rng.pick(&[
            "==",
            "!=",
            "===",
            "!==",
            "<",
            "<=",
            ">",
            ">=",
            "+",
            "-",
            "*",
            "/",
            "%",
            "min",
            "max",
            "!",
            "!!",
            "and",
            "or",
            "if",
            "?:",
            "cat",
            "substr",
            "in",
            "merge",
            "missing",
            "missing_some",
            "map",
            "filter",
            "reduce",
            "all",
            "some",
            "none",
            "log",
            "var",
        ]);
        let args = match op {
            "==" | "!=" | "===" | "!==" | ">" | ">=" => self.args(scope, depth, &[2, 2, 2, 1, 0]),
            "<" | "<=" => self.args(scope, depth, &[2, 2, 3, 3, 1]),
            "+" => self.args(scope, depth, &[0, 1, 2, 2, 3]),
            // `{"*": []}` makes json-logic-js throw (a documented difference): rarely.
            "*" if self.rng.chance(3) => Vec::new(),
            "*" => self.args(scope, depth, &[1, 2, 2, 3]),
            "-" => self.args(scope, depth, &[0, 1, 1, 2, 2]),
            "/" | "%" => self.args(scope, depth, &[1, 2, 2, 2]),
            "min" | "max" => self.args(scope, depth, &[0, 1, 2, 3]),
            "!" | "!!" | "log" => self.args(scope, depth, &[1, 1, 1, 2]),
            "and" | "or" | "cat" | "merge" => self.args(scope, depth, &[0, 1, 2, 3]),
            "if" | "?:" => self.args(scope, depth, &[0, 1, 2, 3, 3, 4, 5]),
            "substr" => {
                let mut args = vec![self.expr(scope, depth - 1)];
                for _ in 0..self.rng.pick(&[0, 1, 2, 2]) {
                    args.push(match self.rng.below(4) {
                        0 => self.expr(scope, depth - 1),
                        1 => scalar(&mut self.rng),
                        _ => json!(self.rng.below(11) as i64 - 5),
                    });
                }
                args
            }
            "in" => {
                let needle = self.expr(scope, depth - 1);
                let hay = match self.rng.below(3) {
                    0 => tricky_string(&mut self.rng),
                    1 => self.list(scope, depth),
                    _ => self.expr(scope, depth - 1),
                };
                vec![needle, hay]
            }
            "missing" | "missing_some" => {
                let keys: Vec<Value> = (0..self.rng.below(4)).map(|_| self.path(scope)).collect();
                if op == "missing" {
                    if self.rng.chance(50) {
                        vec![Value::Array(keys)]
                    } else {
                        keys
                    }
                } else {
                    let need = match self.rng.below(4) {
                        0 => scalar(&mut self.rng),
                        n => json!(n - 1),
                    };
                    vec![need, Value::Array(keys)]
                }
            }
            "map" | "filter" | "all" | "some" | "none" => {
                let list = self.list(scope, depth);
                if self.rng.chance(5) {
                    vec![list]
                } else {
                    vec![list, self.expr(Scope::Item, depth - 1)]
                }
            }
            "reduce" => {
                let list = self.list(scope, depth);
                let mut args = vec![list];
                if !self.rng.chance(5) {
                    args.push(self.expr(Scope::Reduce, depth - 1));
                    if self.rng.chance(80) {
                        args.push(self.expr(scope, depth - 1));
                    }
                }
                args
            }
            _ => return self.var(scope, depth),
        };
        // One argument is sometimes written without its list, as JSONLogic allows.
        if args.len() == 1 && !args[0].is_array() && self.rng.chance(50) {
            let only = args.into_iter().next().unwrap_or(Value::Null);
            return json!({ op: only });
        }
        json!({ op: args })
    }
}

/// Whether `v` holds an integer that a double cannot hold exactly: Rulebook keeps it, while
/// JavaScript has rounded it before anything runs.
fn has_big_integer(v: &Value) -> bool {
    match v {
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => (i as f64) as i128 != i128::from(i),
            (None, Some(u)) => (u as f64) as u128 != u128::from(u),
            _ => false,
        },
        Value::Array(items) => items.iter().any(has_big_integer),
        Value::Object(m) => m.values().any(has_big_integer),
        _ => false,
    }
}

/// JSONLogic's truthiness of a json-logic-js answer, marks included.
fn js_truthy(v: &Value) -> bool {
    match v.get("$js").and_then(Value::as_str) {
        Some("undefined" | "NaN" | "-0") => false,
        Some(_) => true,
        None => reference::truthy(v),
    }
}

/// The same answer: numbers by value (`3` and `3.0`); `-0` as any zero, and a number that is not
/// finite or `undefined` as `null`, as JSON writes them (the README's rows `-0`, "A number that
/// is not finite" and `undefined`: only where such a value flows into another operator can the
/// answers differ, which `run.js` flags); everything else exactly.
fn same(js: &Value, ours: &Value) -> bool {
    match (js.get("$js").and_then(Value::as_str), ours) {
        (Some("-0"), Value::Number(y)) => return y.as_f64() == Some(0.0),
        (Some("NaN" | "Infinity" | "-Infinity" | "undefined"), Value::Null) => return true,
        _ => {}
    }
    match (js, ours) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => js == ours,
    }
}

struct Case {
    logic: Value,
    data: Value,
    reads_whole_data: bool,
}

fn generate(seed: u64, count: usize) -> Vec<Case> {
    let mut generator = Generator {
        rng: Rng(seed),
        reads_whole_data: false,
    };
    (0..count)
        .map(|_| {
            generator.reads_whole_data = false;
            let depth = 1 + generator.rng.below(4);
            let logic = generator.expr(Scope::Top, depth);
            let data = data(&mut generator.rng);
            Case {
                logic,
                data,
                reads_whole_data: generator.reads_whole_data,
            }
        })
        .collect()
}

/// json-logic-js's answers to `cases`, from one node process; `None` when it cannot run here.
fn run_json_logic_js(cases: &[Case]) -> Option<Vec<Value>> {
    let package = Path::new(HARNESS).join("node_modules/json-logic-js/package.json");
    let version = std::fs::read_to_string(&package)
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .and_then(|p| p["version"].as_str().map(str::to_owned));
    match version.as_deref() {
        Some("2.0.5") => {}
        Some(other) => {
            return unavailable(&format!("the harness has json-logic-js {other}, not 2.0.5"))
        }
        None => return unavailable(&format!("{} is missing", package.display())),
    }
    let mut lines = tempfile::NamedTempFile::new().unwrap();
    for case in cases {
        let line = json!({"logic": case.logic, "data": case.data});
        writeln!(lines, "{line}").unwrap();
    }
    lines.flush().unwrap();
    let output = match Command::new("node")
        .arg("run.js")
        .current_dir(HARNESS)
        .stdin(std::fs::File::open(lines.path()).unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .output()
    {
        Ok(output) => output,
        Err(e) => return unavailable(&format!("`node` does not start ({e})")),
    };
    assert!(output.status.success(), "run.js failed: {}", output.status);
    let answers: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(answers.len(), cases.len(), "one answer per case");
    Some(answers)
}

fn count_from_env(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{var}=`{v}` is not a number"))
        })
        .unwrap_or(default)
}

#[test]
fn rulebook_computes_what_json_logic_js_computes() {
    for row in DOCUMENTED
        .iter()
        .map(|(_, row)| row)
        .chain(&[COMPARED_AS_JSON_WRITES_IT])
    {
        assert!(
            README.contains(&format!("| {row}")),
            "the README's table of differences has no row `{row}`"
        );
    }
    let count = count_from_env("RULEBOOK_DIFF_CASES", 3_000) as usize;
    let seed = count_from_env("RULEBOOK_DIFF_SEED", 0x5EED_1050);
    let cases = generate(seed, count);
    let Some(answers) = run_json_logic_js(&cases) else {
        return;
    };

    let entry_point = EntryPoint::parse("differential").unwrap();
    let at = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    let limits = Limits::default();
    let mut excused: BTreeMap<&str, usize> = BTreeMap::new();
    let mut conditions = 0;
    let mut failures = Vec::new();
    for (case, answer) in cases.iter().zip(&answers) {
        let logic = Logic::compile(&case.logic).unwrap();
        let ours = logic.evaluate(&case.data, &limits);
        let mut flags: Vec<String> = answer["flags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap().to_owned())
            .collect();
        if has_big_integer(&case.logic) || has_big_integer(&case.data) {
            flags.push("big-integer".into());
        }
        let mut problems = Vec::new();
        match (&answer["error"], &ours) {
            (Value::String(e), _) if e.contains("Reduce of empty array") => {
                flags.push("empty-product".into());
                problems.push(format!("json-logic-js throws `{e}`"));
            }
            (Value::String(e), _) => problems.push(format!("json-logic-js throws `{e}`")),
            (_, Err(e)) => problems.push(format!("Rulebook fails: {e}")),
            (_, Ok(v)) if !same(&answer["result"], v) => {
                problems.push(format!(
                    "json-logic-js gives {}, Rulebook {v}",
                    answer["result"]
                ));
            }
            _ => {}
        }
        if !case.reads_whole_data && answer.get("result").is_some() {
            conditions += 1;
            let mut rule = Rule::new("case");
            rule.entry_point = Some(entry_point.clone());
            rule.condition = case.logic.clone();
            let set = Ruleset::compile(entry_point.clone(), vec![rule]).unwrap();
            let evaluation = set.evaluate(&case.data, at, &limits);
            let want = js_truthy(&answer["result"]);
            match evaluation.errors.first() {
                Some(e) => problems.push(format!("the condition fails: {}", e.message)),
                None if evaluation.matched.is_empty() == want => problems.push(format!(
                    "the condition {} though json-logic-js's value is {}",
                    if want { "does not match" } else { "matches" },
                    if want { "truthy" } else { "falsy" }
                )),
                None => {}
            }
        }
        if problems.is_empty() {
            continue;
        }
        match DOCUMENTED
            .iter()
            .find(|(flag, _)| flags.iter().any(|f| f == flag))
        {
            Some((_, row)) => *excused.entry(row).or_default() += 1,
            None => failures.push(format!(
                "{} with {}: {} (flags {flags:?})",
                case.logic,
                case.data,
                problems.join("; ")
            )),
        }
    }
    println!(
        "{count} cases (seed {seed:#x}), {conditions} also as conditions; differences the README \
         lists: {excused:?}"
    );
    assert!(
        failures.is_empty(),
        "{} of {count} cases differ from json-logic-js (seed {seed:#x}) in a way the README does \
         not list:\n{}",
        failures.len(),
        failures
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
