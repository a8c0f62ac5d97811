//! Rulebook's JSONLogic: a compiled expression tree with limits.
//!
//! [`Logic::compile`] turns a JSON expression into a tree of [`Node`]s once (per rule version);
//! evaluation walks the tree. Compilation checks nesting depth with a counter, so a 10,000-deep
//! expression is an error before anything recurses that deep, and evaluation spends from a work
//! budget, so `map` over a huge array cannot hang a request.
//!
//! One file per operator group, dispatched through [`Op`]: [`data`] (`var`, `missing`,
//! `missing_some`), [`logical`] (`if`, `?:`, `and`, `or`, `!`, `!!`), [`compare`] (`==`, `===`,
//! `!=`, `!==`, `<`, `<=`, `>`, `>=`), [`arithmetic`] (`+`, `-`, `*`, `/`, `%`, `min`, `max`),
//! [`array`] (`map`, `filter`, `reduce`, `all`, `some`, `none`, `merge`, `in`) and [`string`]
//! (`cat`, `substr`, `log`), plus `preserve` (json-logic-engine's name), which returns its
//! argument as written without computing it. Values follow JavaScript's coercions as
//! json-logic-js 2.x, the reference implementation, applies them ([`value`]); the crate README's
//! table "Differences from json-logic-js" lists where Rulebook's answers differ and why, and
//! `tests/jsonlogic_js_differential.rs` checks the rest against json-logic-js itself.

mod arithmetic;
mod array;
mod compare;
pub(crate) mod data;
mod logical;
mod string;
pub(crate) mod value;

use serde_json::Value;

use crate::{EvalError, Limits};

/// Why an expression does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogicError {
    /// An object with one key names no operator.
    #[error("unknown operator `{op}` at `{at}`; use a JSONLogic operator such as `==`, `and`, `if` or `var`, or, if the object is data, give it more than one key or wrap it in `{{\"preserve\": ...}}`")]
    UnknownOperator {
        /// The key.
        op: String,
        /// Where, as a path inside the expression.
        at: String,
    },
    /// Nested deeper than allowed.
    #[error("expression nests deeper than {limit} levels; simplify it")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// More nodes than allowed.
    #[error("expression has more than {limit} nodes; simplify it")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
}

/// A compiled JSONLogic expression. Immutable, `Send + Sync`; share it behind an `Arc`.
#[derive(Debug, Clone)]
pub struct Logic {
    root: Node,
    depth: usize,
    nodes: usize,
}

#[derive(Debug, Clone)]
pub(crate) enum Node {
    Literal(Value),
    Array(Vec<Node>),
    /// `var` with a constant path, split once at compile time.
    Var {
        path: Vec<String>,
        default: Option<Box<Node>>,
    },
    Op {
        op: Op,
        args: Vec<Node>,
    },
}

macro_rules! ops {
    ($($variant:ident => $name:literal,)*) => {
        /// Every operator Rulebook's JSONLogic knows.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Op { $($variant,)* }

        impl Op {
            fn from_name(name: &str) -> Option<Op> {
                match name { $($name => Some(Op::$variant),)* _ => None }
            }
        }

        /// The names of every supported operator.
        pub const OPERATORS: &[&str] = &[$($name,)*];
    };
}

ops! {
    Var => "var", Missing => "missing", MissingSome => "missing_some",
    If => "if", Ternary => "?:", And => "and", Or => "or", Not => "!", Truthy => "!!",
    LooseEq => "==", StrictEq => "===", LooseNe => "!=", StrictNe => "!==",
    Lt => "<", Le => "<=", Gt => ">", Ge => ">=",
    Add => "+", Sub => "-", Mul => "*", Div => "/", Rem => "%", Min => "min", Max => "max",
    Map => "map", Filter => "filter", Reduce => "reduce", All => "all", Some => "some",
    None => "none", Merge => "merge", In => "in",
    Cat => "cat", Substr => "substr", Log => "log",
    Preserve => "preserve",
}

/// Whether `value` is a JSONLogic operation, as an action field decides whether it is computed:
/// an object with one key that names an operator, or a list holding one (JSONLogic evaluates the
/// elements of a list).
pub fn is_operation(value: &Value) -> bool {
    match value {
        Value::Object(map) if map.len() == 1 => map
            .keys()
            .next()
            .is_some_and(|name| Op::from_name(name).is_some()),
        Value::Array(items) => items.iter().any(is_operation),
        _ => false,
    }
}

struct Compiler {
    limits: Limits,
    nodes: usize,
    depth: usize,
}

impl Logic {
    /// Compiles an expression within the default [`Limits`] (the ones evaluation applies).
    pub fn compile(expr: &Value) -> Result<Logic, LogicError> {
        Logic::compile_with(expr, &Limits::default())
    }

    /// Compiles an expression within `limits`' depth and size: an expression deeper or larger is
    /// refused before anything recurses that deep.
    pub fn compile_with(expr: &Value, limits: &Limits) -> Result<Logic, LogicError> {
        let mut c = Compiler {
            limits: *limits,
            nodes: 0,
            depth: 0,
        };
        let root = c.node(expr, 1, &mut String::new())?;
        Ok(Logic {
            root,
            depth: c.depth,
            nodes: c.nodes,
        })
    }

    /// The deepest nesting in the expression (a literal is 1).
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// How many nodes the expression has.
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// Whether the expression is the constant `true` (a rule that always matches).
    pub fn is_always_true(&self) -> bool {
        matches!(self.root, Node::Literal(Value::Bool(true)))
    }

    /// Evaluates against `data` with its own budget of `limits.max_ops`.
    ///
    /// ```
    /// use rulebook_rules::{logic::Logic, Limits};
    /// use serde_json::json;
    /// let logic = Logic::compile(&json!({"<": [{"var": "age"}, 18]})).unwrap();
    /// let out = logic.evaluate(&json!({"age": 12}), &Limits::default()).unwrap();
    /// assert_eq!(out, json!(true));
    /// ```
    pub fn evaluate(&self, data: &Value, limits: &Limits) -> Result<Value, EvalError> {
        let mut budget = Budget::new(limits.max_ops);
        self.check(limits, "")?;
        self.eval_in(&Scope::Data(data), &mut budget)
    }

    /// Checks the expression's size against `limits`.
    pub(crate) fn check(&self, limits: &Limits, rule_id: &str) -> Result<(), EvalError> {
        if self.depth > limits.max_depth {
            return Err(EvalError::TooDeep {
                rule_id: rule_id.to_owned(),
                depth: self.depth,
                limit: limits.max_depth,
            });
        }
        if self.nodes > limits.max_nodes {
            return Err(EvalError::TooLarge {
                rule_id: rule_id.to_owned(),
                nodes: self.nodes,
                limit: limits.max_nodes,
            });
        }
        Ok(())
    }

    pub(crate) fn eval_in(
        &self,
        scope: &Scope<'_>,
        budget: &mut Budget,
    ) -> Result<Value, EvalError> {
        eval(&self.root, scope, budget)
    }

    /// Whether the expression's value is truthy: what a rule's condition asks, answered without
    /// building the value where the operator allows.
    pub(crate) fn holds_in(
        &self,
        scope: &Scope<'_>,
        budget: &mut Budget,
    ) -> Result<bool, EvalError> {
        holds(&self.root, scope, budget)
    }

    /// The values of the expression's top-level operands, each computed in full (no short
    /// circuit), to explain a condition that did not hold; an expression that is not an operation
    /// (a literal, a bare `var`) gives its one value.
    pub(crate) fn operand_values(
        &self,
        scope: &Scope<'_>,
        budget: &mut Budget,
    ) -> Result<Vec<Value>, EvalError> {
        match &self.root {
            Node::Op { op, args } if *op != Op::Var => {
                args.iter().map(|node| eval(node, scope, budget)).collect()
            }
            other => Ok(vec![eval(other, scope, budget)?]),
        }
    }
}

impl Compiler {
    fn enter(&mut self, depth: usize) -> Result<(), LogicError> {
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            return Err(LogicError::TooLarge {
                limit: self.limits.max_nodes,
            });
        }
        if depth > self.limits.max_depth {
            return Err(LogicError::TooDeep {
                limit: self.limits.max_depth,
            });
        }
        self.depth = self.depth.max(depth);
        Ok(())
    }

    /// `at` is the path to `expr` inside the expression, for messages.
    fn node(&mut self, expr: &Value, depth: usize, at: &mut String) -> Result<Node, LogicError> {
        self.enter(depth)?;
        match expr {
            Value::Array(items) => {
                let nodes = self.list(items, depth, at)?;
                Ok(fold_array(nodes))
            }
            Value::Object(map) if map.len() == 1 => {
                let Some((name, raw_args)) = map.iter().next() else {
                    return Ok(Node::Literal(expr.clone()));
                };
                let Some(op) = Op::from_name(name) else {
                    return Err(LogicError::UnknownOperator {
                        op: name.clone(),
                        at: if at.is_empty() {
                            "the top".to_owned()
                        } else {
                            at.clone()
                        },
                    });
                };
                if op == Op::Preserve {
                    // Returned as written, operators and all: measure it, keep it whole.
                    return self.literal(raw_args, depth + 1);
                }
                let mark = at.len();
                at.push_str(name);
                let args = match raw_args {
                    Value::Array(items) => self.list(items, depth, at)?,
                    single => vec![self.node(single, depth + 1, at)?],
                };
                at.truncate(mark);
                Ok(specialise(op, args))
            }
            Value::Object(_) => self.literal(expr, depth),
            scalar => Ok(Node::Literal(scalar.clone())),
        }
    }

    /// Data, not an operator: measures its depth without recursing, then keeps it whole.
    fn literal(&mut self, value: &Value, depth: usize) -> Result<Node, LogicError> {
        let literal_depth = depth + value_depth(value) - 1;
        if literal_depth > self.limits.max_depth {
            return Err(LogicError::TooDeep {
                limit: self.limits.max_depth,
            });
        }
        self.depth = self.depth.max(literal_depth);
        Ok(Node::Literal(value.clone()))
    }

    fn list(
        &mut self,
        items: &[Value],
        depth: usize,
        at: &mut String,
    ) -> Result<Vec<Node>, LogicError> {
        let mut nodes = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let mark = at.len();
            at.push_str(&format!("[{i}]"));
            nodes.push(self.node(item, depth + 1, at)?);
            at.truncate(mark);
        }
        Ok(nodes)
    }
}

/// An array whose elements are all constants is itself a constant.
fn fold_array(nodes: Vec<Node>) -> Node {
    if nodes.iter().all(|n| matches!(n, Node::Literal(_))) {
        Node::Literal(Value::Array(
            nodes
                .into_iter()
                .filter_map(|n| match n {
                    Node::Literal(v) => Some(v),
                    _ => None,
                })
                .collect(),
        ))
    } else {
        Node::Array(nodes)
    }
}

/// Turns `var` with a constant path into a pre-split lookup.
fn specialise(op: Op, mut args: Vec<Node>) -> Node {
    if op == Op::Var {
        let constant_path = match args.first() {
            None => Some(Vec::new()),
            Some(Node::Literal(path)) => Some(data::split_path(path)),
            Some(_) => None,
        };
        if let Some(path) = constant_path {
            let default = if args.len() > 1 {
                Some(Box::new(args.swap_remove(1)))
            } else {
                None
            };
            return Node::Var { path, default };
        }
    }
    Node::Op { op, args }
}

/// The nesting depth of a JSON value, measured without recursion (a scalar is 1).
pub(crate) fn value_depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 1usize)];
    while let Some((v, d)) = stack.pop() {
        deepest = deepest.max(d);
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, d + 1))),
            Value::Object(map) => stack.extend(map.values().map(|i| (i, d + 1))),
            _ => {}
        }
    }
    deepest
}

/// Drops a JSON value without recursion, so a value nested thousands of levels deep (built by a
/// program; the JSON parser stops at 128) cannot overflow the stack when it goes away.
pub(crate) fn dispose(value: Value) {
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

/// What `var` sees.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope<'a> {
    /// Plain data, as in the JSONLogic suite and inside `map`, `filter`, `all`, `some`, `none`.
    Data(&'a Value),
    /// A rule's view: `input.*` and `params.*`; any other first name is looked up in the input.
    Rule { input: &'a Value, params: &'a Value },
    /// Inside `reduce`: `current` and `accumulator`.
    Reduce {
        current: &'a Value,
        accumulator: &'a Value,
    },
}

/// The work budget of one evaluation.
#[derive(Debug)]
pub(crate) struct Budget {
    remaining: u64,
    limit: u64,
}

impl Budget {
    pub(crate) fn new(limit: u64) -> Budget {
        Budget {
            remaining: limit,
            limit,
        }
    }

    pub(crate) fn spend(&mut self, units: u64) -> Result<(), EvalError> {
        match self.remaining.checked_sub(units) {
            Some(left) => {
                self.remaining = left;
                Ok(())
            }
            None => {
                self.remaining = 0;
                Err(EvalError::OutOfBudget { limit: self.limit })
            }
        }
    }
}

pub(crate) fn eval(
    node: &Node,
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    budget.spend(1)?;
    match node {
        Node::Literal(v) => Ok(v.clone()),
        Node::Array(items) => items
            .iter()
            .map(|n| eval(n, scope, budget))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Node::Var { path, default } => data::var_static(path, default.as_deref(), scope, budget),
        Node::Op { op, args } => {
            let args = args.as_slice();
            match op {
                Op::Var => data::var(args, scope, budget),
                Op::Missing => data::missing(args, scope, budget),
                Op::MissingSome => data::missing_some(args, scope, budget),
                Op::If | Op::Ternary => logical::if_(args, scope, budget),
                Op::And => logical::and(args, scope, budget),
                Op::Or => logical::or(args, scope, budget),
                Op::Not => logical::not(args, scope, budget),
                Op::Truthy => logical::truthy(args, scope, budget),
                Op::LooseEq => compare::loose_eq(args, scope, budget, false),
                Op::LooseNe => compare::loose_eq(args, scope, budget, true),
                Op::StrictEq => compare::strict_eq(args, scope, budget, false),
                Op::StrictNe => compare::strict_eq(args, scope, budget, true),
                Op::Lt => compare::less(args, scope, budget, false),
                Op::Le => compare::less(args, scope, budget, true),
                Op::Gt => compare::greater(args, scope, budget, false),
                Op::Ge => compare::greater(args, scope, budget, true),
                Op::Add => arithmetic::add(args, scope, budget),
                Op::Sub => arithmetic::sub(args, scope, budget),
                Op::Mul => arithmetic::mul(args, scope, budget),
                Op::Div => arithmetic::div(args, scope, budget),
                Op::Rem => arithmetic::rem(args, scope, budget),
                Op::Min => arithmetic::min_max(args, scope, budget, false),
                Op::Max => arithmetic::min_max(args, scope, budget, true),
                Op::Map => array::map(args, scope, budget),
                Op::Filter => array::filter(args, scope, budget),
                Op::Reduce => array::reduce(args, scope, budget),
                Op::All => array::all(args, scope, budget),
                Op::Some => array::some(args, scope, budget),
                Op::None => array::none(args, scope, budget),
                Op::Merge => array::merge(args, scope, budget),
                Op::In => array::in_(args, scope, budget),
                Op::Cat => string::cat(args, scope, budget),
                Op::Substr => string::substr(args, scope, budget),
                Op::Log => string::log(args, scope, budget),
                // Compiled into a literal; never an operator node.
                Op::Preserve => Ok(Value::Null),
            }
        }
    }
}

/// `truthy(eval(node))`, spending the same budget in the same order, without building the values
/// of the logical operators, comparisons and `in` (the usual shape of a rule's condition).
pub(crate) fn holds(
    node: &Node,
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<bool, EvalError> {
    let Node::Op { op, args } = node else {
        return with_value(Some(node), scope, budget, |v, _| Ok(value::truthy(v)));
    };
    let args = args.as_slice();
    match op {
        // `and` gives its first falsy argument or its last one (`null` when it has none): truthy
        // exactly when it has arguments and all of them are; `or` likewise.
        Op::And => {
            budget.spend(1)?;
            for node in args {
                if !holds(node, scope, budget)? {
                    return Ok(false);
                }
            }
            Ok(!args.is_empty())
        }
        Op::Or => {
            budget.spend(1)?;
            for node in args {
                if holds(node, scope, budget)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Op::Not | Op::Truthy => {
            budget.spend(1)?;
            let inner = match args.first() {
                Some(node) => holds(node, scope, budget)?,
                None => false,
            };
            Ok(inner != (*op == Op::Not))
        }
        Op::LooseEq | Op::LooseNe | Op::StrictEq | Op::StrictNe => {
            budget.spend(1)?;
            let negate = matches!(op, Op::LooseNe | Op::StrictNe);
            let eq = if matches!(op, Op::LooseEq | Op::LooseNe) {
                compare::pair(args, scope, budget, value::loose_equals)?
            } else {
                compare::strict(args, scope, budget)?
            };
            Ok(eq != negate)
        }
        Op::Lt | Op::Le => {
            budget.spend(1)?;
            compare::is_less(args, scope, budget, *op == Op::Le)
        }
        Op::Gt | Op::Ge => {
            budget.spend(1)?;
            compare::is_greater(args, scope, budget, *op == Op::Ge)
        }
        Op::In => {
            budget.spend(1)?;
            array::contains(args, scope, budget)
        }
        _ => eval(node, scope, budget).map(|v| value::truthy(&v)),
    }
}

/// Hands `f` the value of `node` without copying it when it is a constant or a `var` that finds
/// something: the hot path of comparisons, `in`, arithmetic and iteration.
pub(crate) fn with_value<R>(
    node: Option<&Node>,
    scope: &Scope<'_>,
    budget: &mut Budget,
    f: impl FnOnce(&Value, &mut Budget) -> Result<R, EvalError>,
) -> Result<R, EvalError> {
    match node {
        None => f(&Value::Null, budget),
        Some(Node::Literal(v)) => {
            budget.spend(1)?;
            f(v, budget)
        }
        Some(Node::Var { path, default }) if !path.is_empty() => {
            budget.spend(1)?;
            // The default stands in only for a path that leads nowhere, not for a `null` found.
            match (data::lookup(scope, path), default) {
                (data::Step::Found(v), _) => f(v, budget),
                (data::Step::Made(v), _) => f(&v, budget),
                (data::Step::Nothing, None) => f(&Value::Null, budget),
                (data::Step::Nothing, Some(default)) => {
                    let v = eval(default, scope, budget)?;
                    f(&v, budget)
                }
            }
        }
        Some(other) => {
            let v = eval(other, scope, budget)?;
            f(&v, budget)
        }
    }
}

/// Evaluates the `i`th argument, or gives `null` when there is none.
pub(crate) fn arg(
    args: &[Node],
    i: usize,
    scope: &Scope<'_>,
    budget: &mut Budget,
) -> Result<Value, EvalError> {
    match args.get(i) {
        Some(node) => eval(node, scope, budget),
        None => Ok(Value::Null),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_operator_is_named_with_its_place() {
        let err = Logic::compile(&json!({"and": [true, {"frobnicate": 1}]})).unwrap_err();
        assert_eq!(
            err,
            LogicError::UnknownOperator {
                op: "frobnicate".into(),
                at: "and[1]".into()
            }
        );
    }

    #[test]
    fn multi_key_objects_are_data() {
        let logic = Logic::compile(&json!({"a": 1, "b": {"c": 2}})).unwrap();
        let out = logic.evaluate(&Value::Null, &Limits::default()).unwrap();
        assert_eq!(out, json!({"a": 1, "b": {"c": 2}}));
    }

    #[test]
    fn constant_var_paths_are_split_once() {
        let logic = Logic::compile(&json!({"var": "a.b"})).unwrap();
        assert!(matches!(logic.root, Node::Var { ref path, .. } if path == &["a", "b"]));
    }

    #[test]
    fn depth_and_size_are_measured() {
        let logic = Logic::compile(&json!({"!": {"!": {"!": true}}})).unwrap();
        assert_eq!(logic.depth(), 4);
        assert_eq!(logic.nodes(), 4);
        let limits = Limits {
            max_depth: 3,
            ..Limits::default()
        };
        assert!(matches!(
            logic.evaluate(&Value::Null, &limits),
            Err(EvalError::TooDeep {
                depth: 4,
                limit: 3,
                ..
            })
        ));
        let limits = Limits {
            max_nodes: 3,
            ..Limits::default()
        };
        assert!(matches!(
            logic.evaluate(&Value::Null, &limits),
            Err(EvalError::TooLarge {
                nodes: 4,
                limit: 3,
                ..
            })
        ));
    }

    #[test]
    fn deep_data_literals_count_towards_depth() {
        let mut v = json!({"x": 1, "y": 2});
        for _ in 0..200 {
            v = json!({"x": v, "y": 0});
        }
        assert!(matches!(
            Logic::compile(&v),
            Err(LogicError::TooDeep { .. })
        ));
    }

    #[test]
    fn the_work_budget_stops_big_maps() {
        let logic =
            Logic::compile(&json!({"map": [{"var": "xs"}, {"+": [{"var": ""}, 1]}]})).unwrap();
        let data = json!({"xs": (0..10_000).collect::<Vec<_>>()});
        let limits = Limits {
            max_ops: 1_000,
            ..Limits::default()
        };
        assert_eq!(
            logic.evaluate(&data, &limits),
            Err(EvalError::OutOfBudget { limit: 1_000 })
        );
        assert!(logic.evaluate(&data, &Limits::default()).is_ok());
    }
}
