//! Prompt templates in a sandbox: a template sees the input and nothing of the server, and rendering one is bounded
//! in time, in loop iterations, in the size of every value it makes and in the size of what it writes.
//!
//! Tera offers more than a prompt needs — `get_env` reads the server's environment, `now` and `get_random` are side
//! channels, macros recurse, `set` lets a value double itself until memory runs out. A template is therefore checked
//! when its function is created or updated, against an allow-list of tags, functions, filters and tests
//! ([`PromptTemplate::compile`]); anything else is refused with an error naming it. What remains is bounded at render
//! time by a [`Budget`] that the allowed filters, `range`, every `for` loop and the output writer all charge:
//! - every `for` loop's container passes through a guard (added to the parsed template) that counts its items against
//!   [`MAX_LOOP_ITERATIONS`] for the whole render, so nested loops cannot multiply without bound;
//! - `range` refuses a range longer than what is left of that count before making it;
//! - every filter's result is at most [`MAX_VALUE_BYTES`] (the ones that can grow by more than a constant factor —
//!   `replace`, `join`, `indent` — are checked before they run), and an expression names at most
//!   [`MAX_VALUES_PER_EXPRESSION`] variables, so no expression can build a value much larger than the input;
//! - the rendered prompt is at most [`MAX_PROMPT_BYTES`], and the writer stops the render when it would grow past it;
//! - the render stops at [`MAX_RENDER_TIME`], checked at every filter, test, loop iteration and write;
//! - at most as many renders run at once as the machine has cores; more wait their turn.
//!
//! Before tera parses a template, its text is checked for depth ([`MAX_BRACKET_DEPTH`], [`MAX_NESTING`],
//! [`MAX_OPERATORS_PER_TAG`]): tera's parser and renderer recurse once per level (a deep enough template would
//! overflow the stack), and its parser's time grows fourfold with every level of nested calls. The parse itself runs
//! on a thread of its own with a large stack, off the thread that serves a request.
//!
//! The engine renders on a blocking thread (`tokio::task::spawn_blocking`), never on the thread that serves a request.

use std::collections::{BTreeSet, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use dashboard_core::{CoreError, error_chain};
use serde_json::Value;
use tera::ast::{Expr, ExprVal, FunctionCall, Node, WS};

use self::budget::{BUDGET, Budget, LimitedWriter};
use crate::json_size::json_len_up_to;

/// The longest rendered prompt, in bytes.
pub const MAX_PROMPT_BYTES: usize = 1024 * 1024;
/// The most loop iterations one render may run, all loops together (nested loops count every inner iteration).
pub const MAX_LOOP_ITERATIONS: u64 = 100_000;
/// The largest value a filter may make (an estimate of its JSON size, in bytes).
pub const MAX_VALUE_BYTES: usize = 4 * 1024 * 1024;
/// The most variables one expression may name: with [`MAX_VALUE_BYTES`] it bounds what one expression can build.
pub const MAX_VALUES_PER_EXPRESSION: usize = 16;
/// The deepest brackets (calls, arguments, parentheses, arrays) may nest in one tag: tera's parser takes about four
/// times as long for every level of nested calls, so this stays small.
pub const MAX_BRACKET_DEPTH: usize = 5;
/// The deepest tags (`if`, `for`) may nest in one another.
pub const MAX_NESTING: usize = 16;
/// The most operators (`+`, `~`, `and`, `|`, `,` …) one tag may hold: tera nests each in the one before.
pub const MAX_OPERATORS_PER_TAG: usize = 100;
/// The longest one render may take.
pub const MAX_RENDER_TIME: Duration = Duration::from_secs(1);

/// The template's name inside its own `Tera` instance.
const NAME: &str = "prompt";
/// The filter the sandbox adds to every `for` loop's container; its name is not one a template can write.
const LOOP_GUARD: &str = "loop guard";
/// The function the sandbox calls at the start of every loop iteration, to check the clock; it writes nothing.
const CLOCK_CHECK: &str = "clock check";

/// The global functions a prompt may call: `range` (bounded) and `throw` (fails the render with a message).
const FUNCTIONS: &[&str] = &["range", "throw"];
/// The filters a prompt may use: each computes on its arguments alone (no clock, no randomness, no environment).
/// `default` and `safe` are tera's own, handled by its renderer rather than registered as filters.
const FILTERS: &[&str] = &[
    "abs",
    "addslashes",
    "as_str",
    "capitalize",
    "concat",
    "default",
    "escape",
    "escape_xml",
    "filter",
    "first",
    "float",
    "get",
    "group_by",
    "indent",
    "int",
    "join",
    "json_encode",
    "last",
    "length",
    "linebreaksbr",
    "lower",
    "map",
    "nth",
    "pluralize",
    "replace",
    "reverse",
    "round",
    "safe",
    "slice",
    "sort",
    "spaceless",
    "split",
    "striptags",
    "title",
    "trim",
    "trim_end",
    "trim_end_matches",
    "trim_start",
    "trim_start_matches",
    "truncate",
    "unique",
    "upper",
    "urlencode",
    "urlencode_strict",
    "wordcount",
];
/// The tests (`is …`) a prompt may use. `matching` is left out: it compiles a regular expression at every use.
const TESTS: &[&str] = &[
    "containing",
    "defined",
    "divisibleby",
    "ending_with",
    "even",
    "iterable",
    "number",
    "object",
    "odd",
    "starting_with",
    "string",
    "undefined",
];

/// A prompt template that passed the sandbox's checks, ready to render.
pub(crate) struct PromptTemplate {
    tera: tera::Tera,
}

impl PromptTemplate {
    /// Parses `source` and checks it against the allow-lists; the error names the field `prompt` and the refused
    /// tag, function, filter or test.
    pub(crate) fn compile(source: &str) -> Result<Self, CoreError> {
        let refuse = |message: String| CoreError::invalid_field("prompt", message);
        shape::check_shape(source).map_err(refuse)?;
        // Checked as parsed, before tera resolves `extends` and `include`, so that those are refused by name too.
        let parsed = tera::Template::new(NAME, None, source).map_err(|error| refuse(error_chain(&error)))?;
        check_nodes(&parsed.ast).map_err(refuse)?;
        let mut tera = tera::Tera::default();
        tera.autoescape_on(Vec::new());
        tera.add_raw_template(NAME, source).map_err(|error| refuse(error_chain(&error)))?;
        let template = tera.templates.get_mut(NAME).expect("the template was just added");
        guard_loops(&mut template.ast);
        sandbox(&mut tera);
        Ok(Self { tera })
    }

    /// Renders the prompt with `input` as `{{ input }}`, within the budget; blocks for at most about
    /// [`MAX_RENDER_TIME`]. The error is one sentence for the person who triggered.
    pub(crate) fn render(&self, input: &Value) -> Result<String, String> {
        let mut context = tera::Context::new();
        context.insert("input", input);
        BUDGET.with(|budget| *budget.borrow_mut() = Some(Budget::new()));
        let mut output = LimitedWriter::default();
        // tera's arithmetic panics on numbers out of range (`1e308 + 1e308`): the input's fault, answered as such.
        let rendered =
            std::panic::catch_unwind(AssertUnwindSafe(|| self.tera.render_to(NAME, &context, &mut output)));
        let exceeded = BUDGET.with(|budget| budget.borrow_mut().take()).and_then(|budget| budget.exceeded);
        match (rendered, exceeded) {
            (_, Some(limit)) => Err(limit),
            (Err(_), None) => {
                Err("the prompt template failed on this input (a number out of range in its arithmetic?)"
                    .to_owned())
            }
            (Ok(Err(error)), None) => Err(format!(
                "the prompt template cannot be rendered with this input: {}",
                error_chain(&error)
            )),
            (Ok(Ok(())), None) => String::from_utf8(output.bytes)
                .map_err(|_| "the prompt template rendered text that is not UTF-8".to_owned()),
        }
    }
}

/// Refuses every node the sandbox does not allow, naming it.
fn check_nodes(nodes: &[Node]) -> Result<(), String> {
    for node in nodes {
        match node {
            Node::Text(_) | Node::Raw(..) | Node::Comment(..) | Node::Break(_) | Node::Continue(_) => {}
            Node::VariableBlock(_, expr) => check_expr_and_size(expr)?,
            Node::Forloop(_, for_loop, _) => {
                check_expr_and_size(&for_loop.container)?;
                check_nodes(&for_loop.body)?;
                if let Some(empty_body) = &for_loop.empty_body {
                    check_nodes(empty_body)?;
                }
            }
            Node::If(if_node, _) => {
                for (_, condition, body) in &if_node.conditions {
                    check_expr_and_size(condition)?;
                    check_nodes(body)?;
                }
                if let Some((_, body)) = &if_node.otherwise {
                    check_nodes(body)?;
                }
            }
            Node::Set(_, set) => {
                let tag = if set.global { "set_global" } else { "set" };
                return Err(format!(
                    "the tag `{{% {tag} %}}` is not allowed in prompts: write the expression where it is used"
                ));
            }
            Node::MacroDefinition(..) | Node::ImportMacro(..) => {
                return Err("macros are not allowed in prompts".to_owned());
            }
            Node::Extends(..) | Node::Include(..) | Node::Block(..) | Node::Super => {
                return Err(
                    "a prompt is one template: `extends`, `include`, `block` and `super` are not allowed"
                        .to_owned(),
                );
            }
            Node::FilterSection(_, section, _) => {
                return Err(format!(
                    "the tag `{{% filter {} %}}` is not allowed in prompts: apply the filter to a value instead",
                    section.filter.name
                ));
            }
        }
    }
    Ok(())
}

/// Checks one top-level expression and how many variables it names.
fn check_expr_and_size(expr: &Expr) -> Result<(), String> {
    let mut n_values = 0;
    check_expr(expr, &mut n_values)?;
    if n_values > MAX_VALUES_PER_EXPRESSION {
        return Err(format!(
            "an expression names {n_values} variables; a prompt's expressions may name at most {MAX_VALUES_PER_EXPRESSION} each"
        ));
    }
    Ok(())
}

fn check_expr(expr: &Expr, n_values: &mut usize) -> Result<(), String> {
    check_value(&expr.val, n_values)?;
    expr.filters.iter().try_for_each(|filter| check_call(filter, "filter", FILTERS, n_values))
}

fn check_value(value: &ExprVal, n_values: &mut usize) -> Result<(), String> {
    match value {
        ExprVal::String(_) | ExprVal::Int(_) | ExprVal::Float(_) | ExprVal::Bool(_) => Ok(()),
        ExprVal::Ident(_) => {
            *n_values += 1;
            Ok(())
        }
        ExprVal::Math(math) => {
            check_expr(&math.lhs, n_values)?;
            check_expr(&math.rhs, n_values)
        }
        ExprVal::Logic(logic) => {
            check_expr(&logic.lhs, n_values)?;
            check_expr(&logic.rhs, n_values)
        }
        ExprVal::In(contains) => {
            check_expr(&contains.lhs, n_values)?;
            check_expr(&contains.rhs, n_values)
        }
        ExprVal::Test(test) => {
            *n_values += 1;
            if !TESTS.contains(&test.name.as_str()) {
                return Err(refusal("test", &test.name, TESTS));
            }
            test.args.iter().try_for_each(|arg| check_expr(arg, n_values))
        }
        ExprVal::MacroCall(call) => {
            Err(format!("macros are not allowed in prompts (`{}::{}`)", call.namespace, call.name))
        }
        ExprVal::FunctionCall(call) => check_call(call, "function", FUNCTIONS, n_values),
        ExprVal::Array(items) => items.iter().try_for_each(|item| check_expr(item, n_values)),
        ExprVal::StringConcat(concat) => {
            concat.values.iter().try_for_each(|value| check_value(value, n_values))
        }
    }
}

fn check_call(call: &FunctionCall, kind: &str, allowed: &[&str], n_values: &mut usize) -> Result<(), String> {
    if !allowed.contains(&call.name.as_str()) {
        return Err(refusal(kind, &call.name, allowed));
    }
    call.args.values().try_for_each(|arg| check_expr(arg, n_values))
}

fn refusal(kind: &str, name: &str, allowed: &[&str]) -> String {
    format!("the {kind} `{name}` is not allowed in prompts (they may use: {})", allowed.join(", "))
}

/// Adds the loop guard as the last filter of every `for` loop's container, and a clock check at the start of every
/// loop body (a body of conditions alone would otherwise never look at the clock).
fn guard_loops(nodes: &mut [Node]) {
    for node in nodes {
        match node {
            Node::Forloop(_, for_loop, _) => {
                let guard = FunctionCall { name: LOOP_GUARD.to_owned(), args: HashMap::new() };
                for_loop.container.filters.push(guard);
                let clock_check = FunctionCall { name: CLOCK_CHECK.to_owned(), args: HashMap::new() };
                let clock_check =
                    Node::VariableBlock(WS::default(), Expr::new(ExprVal::FunctionCall(clock_check)));
                for_loop.body.insert(0, clock_check);
                guard_loops(&mut for_loop.body);
                if let Some(empty_body) = &mut for_loop.empty_body {
                    guard_loops(empty_body);
                }
            }
            Node::If(if_node, _) => {
                for (_, _, body) in &mut if_node.conditions {
                    guard_loops(body);
                }
                if let Some((_, body)) = &mut if_node.otherwise {
                    guard_loops(body);
                }
            }
            _ => {}
        }
    }
}

/// Leaves `tera` with the allowed functions, filters and tests only, each charging the budget.
fn sandbox(tera: &mut tera::Tera) {
    let allowed_filters: BTreeSet<&str> = FILTERS.iter().copied().collect();
    let builtins = std::mem::take(&mut tera.filters);
    for (name, filter) in builtins {
        if let Some(name) = allowed_filters.get(name.as_str()) {
            tera.filters.insert((*name).to_owned(), Arc::new(Guarded { name, inner: filter }));
        }
    }
    tera.register_filter(LOOP_GUARD, guard_loop);
    let builtin_tests = std::mem::take(&mut tera.testers);
    for (name, test) in builtin_tests {
        if TESTS.contains(&name.as_str()) {
            tera.testers.insert(name, Arc::new(GuardedTest { inner: test }));
        }
    }
    let (throw, range) = (tera.functions.remove("throw"), tera.functions.remove("range"));
    tera.functions.clear();
    if let Some(throw) = throw {
        tera.functions.insert("throw".to_owned(), throw);
    }
    if let Some(range) = range {
        tera.functions.insert("range".to_owned(), Arc::new(BoundedRange { inner: range }));
    }
    tera.register_function(CLOCK_CHECK, |_: &HashMap<String, Value>| {
        Budget::check_time()?;
        Ok(Value::String(String::new()))
    });
}

/// One test of tera's (`is …`), checking the clock first.
struct GuardedTest {
    inner: Arc<dyn tera::Test>,
}

impl tera::Test for GuardedTest {
    fn test(&self, value: Option<&Value>, args: &[Value]) -> tera::Result<bool> {
        Budget::check_time()?;
        self.inner.test(value, args)
    }
}

/// One filter of tera's, with the budget's checks around it.
struct Guarded {
    name: &'static str,
    inner: Arc<dyn tera::Filter>,
}

impl tera::Filter for Guarded {
    fn filter(&self, value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
        Budget::check_time()?;
        if let Some(size) = grown_size(self.name, value, args) {
            Budget::check_value_size(size)?;
        }
        let result = self.inner.filter(value, args)?;
        Budget::check_value_size(json_size(&result))?;
        Ok(result)
    }

    fn is_safe(&self) -> bool {
        self.inner.is_safe()
    }
}

/// For the filters whose result can outgrow their input by more than a constant factor, the size of the result,
/// computed before making it.
fn grown_size(filter: &str, value: &Value, args: &HashMap<String, Value>) -> Option<usize> {
    let text_arg = |name: &str| args.get(name).and_then(Value::as_str).map_or(0, str::len);
    match (filter, value) {
        ("replace", Value::String(text)) => {
            let from = args.get("from").and_then(Value::as_str)?;
            let n_matches =
                if from.is_empty() { text.chars().count() + 1 } else { text.matches(from).count() };
            Some(text.len() + n_matches.saturating_mul(text_arg("to")))
        }
        ("join", Value::Array(items)) => {
            let items_size: usize = items.iter().map(json_size).sum();
            Some(items_size + items.len().saturating_mul(text_arg("sep")))
        }
        ("split", Value::String(text)) => {
            // Each piece costs its text and a string of its own (about 32 bytes as a JSON value).
            let pattern = args.get("pat").and_then(Value::as_str)?;
            let n_pieces =
                if pattern.is_empty() { text.chars().count() + 2 } else { text.matches(pattern).count() + 1 };
            Some(text.len() + n_pieces.saturating_mul(32))
        }
        ("json_encode", value) => {
            let is_pretty = args.get("pretty").and_then(Value::as_bool).unwrap_or(false);
            Some(encoded_size(value, is_pretty))
        }
        ("indent", Value::String(text)) => {
            let width = args.get("width").and_then(Value::as_u64).unwrap_or(4);
            let prefix =
                args.get("prefix").and_then(Value::as_str).map_or(width, |prefix| prefix.len() as u64);
            let n_lines = text.lines().count() as u64 + 1;
            Some(
                text.len()
                    .saturating_add(usize::try_from(n_lines.saturating_mul(prefix)).unwrap_or(usize::MAX)),
            )
        }
        _ => None,
    }
}

/// Counts a loop's items against the budget and passes the container through.
fn guard_loop(container: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    Budget::check_time()?;
    let n_items = match container {
        Value::Array(items) => items.len(),
        Value::Object(fields) => fields.len(),
        Value::String(text) => text.chars().count(),
        _ => 0,
    };
    Budget::charge_iterations(n_items as u64)?;
    Ok(container.clone())
}

/// tera's `range(start, end, step_by)`, refusing a range longer than the iterations left before making it.
struct BoundedRange {
    inner: Arc<dyn tera::Function>,
}

impl tera::Function for BoundedRange {
    fn call(&self, args: &HashMap<String, Value>) -> tera::Result<Value> {
        Budget::check_time()?;
        let number = |name: &str, default: f64| args.get(name).and_then(Value::as_f64).unwrap_or(default);
        let (start, end, step) = (number("start", 0.0), number("end", 0.0), number("step_by", 1.0));
        if step < 1.0 {
            return Err(tera::Error::msg("Function `range` needs a `step_by` of at least 1"));
        }
        if end > start {
            Budget::check_iterations(((end - start) / step).ceil() as u64)?;
        }
        self.inner.call(args)
    }
}

/// The size of `value` as JSON text, counted while it is written out and only up to just past [`MAX_VALUE_BYTES`].
fn encoded_size(value: &Value, is_pretty: bool) -> usize {
    json_len_up_to(value, MAX_VALUE_BYTES, is_pretty)
}

/// An estimate of a value's size as JSON, in bytes.
fn json_size(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => 8,
        Value::String(text) => text.len() + 2,
        Value::Array(items) => items.iter().map(json_size).sum::<usize>() + items.len() + 2,
        Value::Object(fields) => {
            fields.iter().map(|(key, value)| key.len() + 4 + json_size(value)).sum::<usize>() + 2
        }
    }
}

mod budget;
mod shape;
#[cfg(test)]
mod tests;
