//! The shape of a template, checked on its text before tera parses it: tera's parser and renderer recurse once per
//! level of brackets, of operators chained in one expression and of nested tags, so a deep enough template would
//! overflow the stack and abort the whole server. Within the prompt's length (100,000 characters) that depth is
//! reachable; these limits keep it far below what a thread's stack holds, in debug builds too.

use super::{MAX_BRACKET_DEPTH, MAX_NESTING, MAX_OPERATORS_PER_TAG};

/// The tags that open a block closed by an `end…` tag.
const OPENING_TAGS: &[&str] = &["if", "for", "filter", "macro", "block"];

/// Refuses a template whose brackets, operators or tags nest deeper than the limits; leaves every other error
/// (an unclosed tag, a syntax error) to tera's parser, which reports them better.
pub(super) fn check_shape(source: &str) -> Result<(), String> {
    let mut rest = source;
    let mut n_open_blocks = 0_usize;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let (close, is_statement) = match after.as_bytes().first() {
            Some(b'{') => ("}}", false),
            Some(b'%') => ("%}", true),
            Some(b'#') => {
                let Some(end) = after.find("#}") else { return Err(unclosed("{#")) };
                rest = &after[end + 2..];
                continue;
            }
            _ => {
                rest = after;
                continue;
            }
        };
        let Some((body, remaining)) = split_tag(&after[1..], close) else {
            return Err(unclosed(if is_statement { "{%" } else { "{{" }));
        };
        let body = body.trim_matches('-').trim();
        check_expression(body)?;
        rest = remaining;
        if !is_statement {
            continue;
        }
        let word = body.split_whitespace().next().unwrap_or_default();
        if word == "raw" {
            // Everything up to the `{% endraw %}` tag is text, whatever it looks like.
            let Some(end) = end_of_raw(rest) else { return Err(unclosed("{% raw %}")) };
            rest = &rest[end..];
        } else if OPENING_TAGS.contains(&word) {
            n_open_blocks += 1;
            if n_open_blocks > MAX_NESTING {
                return Err(format!(
                    "tags nest more than {MAX_NESTING} deep; a prompt's tags may nest at most that"
                ));
            }
        } else if word.starts_with("end") {
            n_open_blocks = n_open_blocks.saturating_sub(1);
        }
    }
    Ok(())
}

/// What a template with an unclosed tag, comment, string or raw block is told: tera refuses it too, but its text is
/// not checked past that point, so it is refused before tera parses it.
fn unclosed(what: &str) -> String {
    format!("a `{what}` is not closed (or a string inside it is not)")
}

/// Where the text after a `{% raw %}` tag ends: just past the first `{% endraw %}` tag (with tera's optional `-` and
/// spaces), as tera's grammar ends it.
fn end_of_raw(text: &str) -> Option<usize> {
    let mut offset = 0;
    while let Some(start) = text[offset..].find("{%") {
        let tag = &text[offset + start + 2..];
        let inside = tag.strip_prefix('-').unwrap_or(tag).trim_start();
        if let Some(after_word) = inside.strip_prefix("endraw") {
            let after_word = after_word.trim_start();
            let after_word = after_word.strip_prefix('-').unwrap_or(after_word);
            if let Some(after_tag) = after_word.strip_prefix("%}") {
                return Some(text.len() - after_tag.len());
            }
        }
        offset += start + 2;
    }
    None
}

/// The body of a tag up to `close` (skipping string literals, which may contain it), and the text after it.
fn split_tag<'a>(text: &'a str, close: &str) -> Option<(&'a str, &'a str)> {
    let mut quote = None;
    for (index, char) in text.char_indices() {
        match quote {
            Some(open) if char == open => quote = None,
            Some(_) => {}
            None if matches!(char, '"' | '\'' | '`') => quote = Some(char),
            None if text[index..].starts_with(close) => {
                return Some((&text[..index], &text[index + close.len()..]));
            }
            None => {}
        }
    }
    None
}

/// Counts the brackets' depth and the operators of one tag's body, outside its string literals.
fn check_expression(body: &str) -> Result<(), String> {
    let (mut depth, mut n_operators, mut quote) = (0_usize, 0_usize, None);
    let mut word = String::new();
    for char in body.chars().chain([' ']) {
        if let Some(open) = quote {
            if char == open {
                quote = None;
            }
            continue;
        }
        if char.is_alphanumeric() || char == '_' {
            word.push(char);
            continue;
        }
        if matches!(word.as_str(), "and" | "or" | "not" | "in" | "is") {
            n_operators += 1;
        }
        word.clear();
        match char {
            '"' | '\'' | '`' => quote = Some(char),
            '(' | '[' => {
                depth += 1;
                if depth > MAX_BRACKET_DEPTH {
                    return Err(format!(
                        "brackets nest more than {MAX_BRACKET_DEPTH} deep in `{}`; a prompt's brackets may nest at \
                         most that",
                        excerpt(body)
                    ));
                }
            }
            ')' | ']' => depth = depth.saturating_sub(1),
            '+' | '-' | '*' | '/' | '%' | '~' | '<' | '>' | '=' | '!' | '|' | ',' => n_operators += 1,
            _ => {}
        }
    }
    if n_operators > MAX_OPERATORS_PER_TAG {
        return Err(format!(
            "`{}` holds {n_operators} operators; one tag of a prompt may hold at most {MAX_OPERATORS_PER_TAG}",
            excerpt(body)
        ));
    }
    Ok(())
}

/// The start of a tag's body, for a message.
fn excerpt(body: &str) -> String {
    let mut excerpt: String = body.chars().take(40).collect();
    if excerpt.len() < body.len() {
        excerpt.push('…');
    }
    excerpt
}
