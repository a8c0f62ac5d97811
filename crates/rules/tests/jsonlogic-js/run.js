// Runs JSONLogic cases through json-logic-js for Rulebook's differential test
// (crates/rules/tests/jsonlogic_js_differential.rs).
//
// Input (the file on stdin): one case a line, {"logic": ..., "data": ...}.
// Output (stdout): one answer a line, in the same order:
//   {"result": <value>, "flags": [...]}   or   {"error": "<message>", "flags": [...]}
//
// JSON cannot say everything JavaScript computes, so the answer marks it:
//   undefined, NaN, Infinity, -Infinity and -0  ->  {"$js": "undefined"} (and so on),
//   a string holding a lone surrogate           ->  {"$js": "lone-surrogate", "text": <U+FFFD for each>},
//   a function (a name JavaScript inherits)     ->  {"$js": "function"}.
//
// Flags name what happened during the evaluation that the README's table "Differences from
// json-logic-js" lists, so the test can tell a documented difference from a fault:
//   "undefined"       an operation inside another gave undefined (the answer itself may be
//                     undefined unflagged: the test compares it as null, as JSON writes it in a list);
//   "non-finite"      an operation inside another gave NaN, Infinity or -Infinity, or the answer
//                     is Infinity or -Infinity (truthy, where null is not; an answer that is NaN
//                     is falsy like null, and the test compares it as null, as JSON writes it);
//   "lone-surrogate"  some operation gave a string with a lone surrogate;
//   "identity"        ==, ===, != or !== compared two lists or objects, or `in` looked for a list
//                     or object in a list (JavaScript compares them by identity).
// json-logic-js itself is not changed: its `apply` is wrapped (it calls itself through
// `jsonLogic.apply`, so the wrapper sees every operation), and `log` keeps printing, to stderr.
"use strict";

const fs = require("fs");
const jsonLogic = require("json-logic-js");

// `log` calls console.log; stdout carries the answers.
console.log = (...parts) => process.stderr.write(parts.map(String).join(" ") + "\n");

let flags = new Set();
let depth = 0;
const apply = jsonLogic.apply;

function isObject(v) {
  return typeof v === "object" && v !== null;
}

function note(v, inside) {
  if (v === undefined) {
    if (inside) flags.add("undefined");
  } else if (typeof v === "number") {
    if (inside ? !Number.isFinite(v) : Math.abs(v) === Infinity) flags.add("non-finite");
  } else if (typeof v === "string" && !v.isWellFormed()) {
    flags.add("lone-surrogate");
  }
}

const IDENTITY_OPERATORS = new Set(["==", "===", "!=", "!=="]);

jsonLogic.apply = function (logic, data) {
  if (jsonLogic.is_logic(logic)) {
    const op = jsonLogic.get_operator(logic);
    if (IDENTITY_OPERATORS.has(op) || op === "in") {
      // Evaluated a second time to see the operands; JSONLogic has no side effects but `log`.
      let values = logic[op];
      if (!Array.isArray(values)) values = [values];
      const a = apply.call(jsonLogic, values[0], data);
      const b = apply.call(jsonLogic, values[1], data);
      if (op === "in" ? isObject(a) && Array.isArray(b) : isObject(a) && isObject(b)) {
        flags.add("identity");
      }
    }
  }
  depth += 1;
  try {
    const result = apply.call(jsonLogic, logic, data);
    note(result, depth > 1);
    return result;
  } finally {
    depth -= 1;
  }
};

function mark(key, v) {
  if (v === undefined) return { $js: "undefined" };
  if (typeof v === "number") {
    if (Number.isNaN(v)) return { $js: "NaN" };
    if (v === Infinity) return { $js: "Infinity" };
    if (v === -Infinity) return { $js: "-Infinity" };
    if (Object.is(v, -0)) return { $js: "-0" };
  }
  if (typeof v === "string" && !v.isWellFormed()) {
    return { $js: "lone-surrogate", text: v.toWellFormed() };
  }
  if (typeof v === "function") return { $js: "function" };
  return v;
}

const out = [];
for (const line of fs.readFileSync(0, "utf8").split("\n")) {
  if (line.trim() === "") continue;
  const { logic, data } = JSON.parse(line);
  flags = new Set();
  let answer;
  try {
    const result = jsonLogic.apply(logic, data);
    answer = { result: result };
  } catch (e) {
    answer = { error: String(e && e.message) };
  }
  answer.flags = [...flags].sort();
  out.push(JSON.stringify(answer, mark));
}
process.stdout.write(out.join("\n") + "\n");
