//! The sandbox of prompt templates: every function, filter and tag tera offers is allowed or refused by name, and
//! every limit stops a render that would pass it.

use serde_json::json;

use super::*;

/// Compiles `source`, expecting a refusal of the field `prompt` whose message contains `named`.
fn check_refused(source: &str, named: &str) {
    match PromptTemplate::compile(source) {
        Ok(_) => panic!("{source:?} was allowed"),
        Err(CoreError::InvalidField { field, message }) => {
            assert_eq!(field, "prompt", "{source:?}");
            assert!(message.contains(named), "{source:?}: {message:?} does not name {named:?}");
        }
        Err(other) => panic!("{source:?}: {other}"),
    }
}

/// Renders `source` with `input`, expecting an error that contains `reason`.
fn check_stopped(source: &str, input: Value, reason: &str) {
    let template = PromptTemplate::compile(source).expect("compiles");
    let error = template.render(&input).expect_err("rendered past a limit");
    assert!(error.contains(reason), "{source:?}: {error:?} does not say {reason:?}");
}

fn render(source: &str, input: Value) -> String {
    PromptTemplate::compile(source).expect("compiles").render(&input).expect("renders")
}

#[test]
fn every_global_function_of_tera_is_refused_unless_allowed() {
    let tera = tera::Tera::default();
    for name in tera.functions.keys() {
        let source = format!("{{{{ {name}(name=\"DASHBOARD_AUTH_TOKEN\") }}}}");
        if FUNCTIONS.contains(&name.as_str()) {
            PromptTemplate::compile(&source).unwrap_or_else(|error| panic!("{name}: {error}"));
        } else {
            check_refused(&source, &format!("`{name}`"));
        }
    }
    // The ones that reach outside the template, whether or not this build of tera has them.
    for name in ["get_env", "now", "get_random"] {
        check_refused(&format!("{{{{ {name}(name=\"HOME\") }}}}"), &format!("the function `{name}`"));
    }
}

#[test]
fn every_filter_of_tera_is_allowed_or_refused_by_name() {
    let tera = tera::Tera::default();
    for name in tera.filters.keys() {
        let source = format!("{{{{ input.text | {name} }}}}");
        if FILTERS.contains(&name.as_str()) {
            PromptTemplate::compile(&source).unwrap_or_else(|error| panic!("{name}: {error}"));
        } else {
            check_refused(&source, &format!("the filter `{name}`"));
        }
    }
    // `date` formats the clock's time with no argument; unknown filters are refused when the function is saved.
    check_refused("{{ 0 | date }}", "the filter `date`");
    check_refused("{{ input.text | no_such_filter }}", "the filter `no_such_filter`");
}

#[test]
fn tests_that_compile_patterns_are_refused() {
    check_refused("{% if input.text is matching(\"a+\") %}x{% endif %}", "the test `matching`");
    assert_eq!(
        render("{% if input.text is starting_with(\"a\") %}yes{% endif %}", json!({"text": "ab"})),
        "yes"
    );
}

#[test]
fn tags_beyond_one_template_of_expressions_are_refused() {
    check_refused("{% set x = input.text %}{{ x }}", "`{% set %}`");
    check_refused("{% for i in input.items %}{% set_global x = i %}{% endfor %}", "`{% set_global %}`");
    check_refused("{% macro f() %}{{ self::f() }}{% endmacro %}", "macros");
    check_refused("{% include \"other\" %}", "`include`");
    check_refused("{% extends \"base\" %}", "`extends`");
    check_refused("{% block body %}x{% endblock %}", "`block`");
    check_refused("{% filter upper %}{{ input.text }}{% endfilter %}", "`{% filter upper %}`");
}

#[test]
fn an_expression_names_a_bounded_number_of_variables() {
    let seventeen = vec!["input.text"; 17].join(" ~ ");
    check_refused(&format!("{{{{ {seventeen} }}}}"), "at most 16");
    let sixteen = vec!["input.text"; 16].join(" ~ ");
    assert_eq!(render(&format!("{{{{ {sixteen} }}}}"), json!({"text": "a"})), "a".repeat(16));
}

#[test]
fn allowed_templates_render_as_before() {
    let source = "Review {{ input.repo | upper }}:\n{% for file in input.files %}- {{ loop.index }}. {{ file }}\n\
                  {% endfor %}{% if input.urgent %}Urgent.{% else %}When you can.{% endif %} \
                  {{ input.files | join(sep=\", \") }} {{ range(end=3) | length }}";
    let input = json!({"repo": "ab", "files": ["x.rs", "y.rs"], "urgent": false});
    assert_eq!(render(source, input), "Review AB:\n- 1. x.rs\n- 2. y.rs\nWhen you can. x.rs, y.rs 3");
}

#[test]
fn a_long_range_is_refused_before_it_is_made() {
    check_stopped("{% for i in range(end=30000000) %}{% endfor %}", json!({}), "more than 100000 times");
    check_stopped(
        "{% for i in range(end=input.times) %}{% endfor %}",
        json!({"times": 3e8}),
        "more than 100000 times",
    );
    check_stopped("{{ range(end=5, step_by=0) | length }}", json!({}), "step_by");
}

#[test]
fn nested_loops_count_every_inner_iteration() {
    let source = "{% for i in range(end=1000) %}{% for j in input.items %}{% endfor %}{% endfor %}";
    check_stopped(source, json!({"items": vec![0; 1000]}), "more than 100000 times");
    // Within the limit, the same loops run.
    render(source, json!({"items": vec![0; 99]}));
}

#[test]
fn the_rendered_prompt_is_bounded() {
    let source = "{% for i in range(end=20000) %}{{ input.text }}{% endfor %}";
    check_stopped(source, json!({"text": "x".repeat(100)}), "over the limit of 1048576 bytes");
}

#[test]
fn filters_cannot_grow_a_value_past_the_limit() {
    let text = "a".repeat(1024 * 1024);
    check_stopped(
        "{{ input.text | replace(from=\"a\", to=\"aaaaaaaa\") | length }}",
        json!({"text": text}),
        "over the limit",
    );
    check_stopped(
        "{{ input.text | replace(from=\"\", to=\"bbbbbbbb\") | length }}",
        json!({"text": text}),
        "over the limit",
    );
    let ampersands = "&".repeat(1024 * 1024);
    check_stopped(
        "{{ input.text | escape | escape | length }}",
        json!({"text": ampersands}),
        "over the limit",
    );
    check_stopped(
        "{{ input.items | join(sep=input.text) | length }}",
        json!({"items": vec![1; 100], "text": text}),
        "over the limit",
    );
    // 100,000 short strings 100 arrays deep: pretty-printed, each line is indented 200 spaces.
    let nested = (0..100).fold(json!(vec!["a"; 100_000]), |inner, _| json!([inner]));
    check_stopped(
        "{{ input.deep | json_encode(pretty=true) | length }}",
        json!({"deep": nested}),
        "over the limit",
    );
    check_stopped("{{ input.text | split(pat=\"\") | length }}", json!({"text": text}), "over the limit");
    check_stopped(
        "{{ input.text | indent(width=100000000) | length }}",
        json!({"text": "a\n".repeat(1000)}),
        "over the limit",
    );
}

#[test]
fn a_render_of_conditions_alone_stops_at_its_time_limit() {
    // No filter, no output: only the clock check at the start of each iteration and the tests see the time.
    let source =
        "{% for i in range(end=99999) %}{% if input.text is containing(\"zzz\") %}{% endif %}{% endfor %}";
    check_stopped(source, json!({"text": "x".repeat(1024 * 1024)}), "longer than 1000 ms");
}

#[test]
fn every_allowed_filter_and_test_exists_in_this_build_of_tera() {
    let tera = tera::Tera::default();
    // `default` and `safe` are tera's renderer's own, not registered filters.
    for name in FILTERS.iter().filter(|name| !matches!(**name, "default" | "safe")) {
        assert!(tera.filters.contains_key(*name), "the filter {name} is allowed but missing");
    }
    for name in TESTS {
        assert!(tera.testers.contains_key(*name), "the test {name} is allowed but missing");
    }
}

#[test]
fn arithmetic_out_of_range_is_an_error_not_a_crash() {
    check_stopped("{{ input.a + input.b }}", json!({"a": 1e308, "b": 1e308}), "out of range");
}

#[test]
fn a_render_stops_at_its_time_limit() {
    // 100,000 iterations each counting the characters of a 1 MiB string: far beyond a second.
    let source = "{% for i in range(end=99999) %}{% if input.text | length > 5 %}{% endif %}{% endfor %}";
    check_stopped(source, json!({"text": "x".repeat(1024 * 1024)}), "longer than 1000 ms");
}

#[test]
fn a_render_outside_the_budget_fails_instead_of_running_unbounded() {
    let template = PromptTemplate::compile("{% for i in range(end=3) %}{% endfor %}").expect("compiles");
    let rendered = template.tera.render(NAME, &tera::Context::new());
    assert!(rendered.is_err(), "rendered without a budget");
}

/// Compiles `source` on a thread with a 2 MiB stack (a tokio worker's or an actix worker's), so that a template
/// deep enough to overflow the stack aborts the test instead of passing by luck on the main thread's 8 MiB.
fn compile_on_small_stack(source: String) -> Result<(), String> {
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || PromptTemplate::compile(&source).map(|_| ()).map_err(|error| error.to_string()))
        .expect("a thread")
        .join()
        .expect("compiling does not panic")
}

#[test]
fn templates_nested_deeper_than_the_stack_holds_are_refused_before_parsing() {
    let cases = [
        (format!("{{{{ {}1{} }}}}", "(".repeat(50_000), ")".repeat(50_000)), "brackets nest more than 5"),
        (format!("{{{{ {}1", "(".repeat(50_000)), "is not closed"),
        // Text that only looks like the end of a raw block, and a string left open, hide nothing.
        (
            format!(
                "{{% raw %}}endraw %}}{{{{ '{{% endraw %}}{{{{ {}1{} }}}}",
                "(".repeat(1000),
                ")".repeat(1000)
            ),
            "brackets nest more than 5",
        ),
        (format!("{{{{ 'x }}}}{{{{ {}1{} }}}}", "(".repeat(1000), ")".repeat(1000)), "is not closed"),
        (format!("{{# {}", "(".repeat(1000)), "is not closed"),
        (format!("{{% raw %}}{}", "(".repeat(1000)), "is not closed"),
        // Nested calls: tera's parser takes four times as long per level.
        (format!("{{{{ {}1{} }}}}", "range(end=".repeat(9), ")".repeat(9)), "brackets nest more than 5"),
        (format!("{{{{ {}1{} }}}}", "[".repeat(1000), "]".repeat(1000)), "brackets nest more than 5"),
        (format!("{{{{ 1{} }}}}", " + 1".repeat(20_000)), "operators"),
        (format!("{{{{ input.a{} }}}}", " ~ input.a".repeat(20_000)), "operators"),
        (format!("{{% if {} %}}x{{% endif %}}", vec!["true"; 10_000].join(" and ")), "operators"),
        (format!("{{{{ {}true }}}}", "not ".repeat(20_000)), "operators"),
        (
            format!("{}x{}", "{% if true %}".repeat(5000), "{% endif %}".repeat(5000)),
            "tags nest more than 16",
        ),
        (
            format!("{}x{}", "{% for i in input.a %}".repeat(5000), "{% endfor %}".repeat(5000)),
            "tags nest more than 16",
        ),
    ];
    for (source, reason) in cases {
        let error = compile_on_small_stack(source.clone()).expect_err("a deep template compiled");
        assert!(error.contains(reason), "{}…: {error:?} does not say {reason:?}", &source[..40]);
    }
}

#[test]
fn templates_at_the_nesting_limits_compile_and_render_on_a_small_stack() {
    let brackets = format!("{{{{ {}1{} }}}}", "(".repeat(5), ")".repeat(5));
    let operators = format!("{{{{ 1{} }}}}", " + 1".repeat(100));
    let tags = format!("{}x{}", "{% if true %}".repeat(16), "{% endif %}".repeat(16));
    for source in [brackets, operators, tags] {
        let rendered = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || PromptTemplate::compile(&source).expect("compiles").render(&json!({})))
            .expect("a thread")
            .join()
            .expect("rendering does not panic");
        rendered.expect("renders");
    }
    // Brackets, operators and tag words inside strings, raw blocks and comments are text, not structure.
    let text = format!(
        "{{{{ \"{}\" }}}}{{% raw %}}{}{{% endraw %}}{{# {} #}}",
        "((((+".repeat(100),
        "{% if x %}".repeat(100),
        "{{ ((((".repeat(100)
    );
    compile_on_small_stack(text).expect("text is not structure");
}
