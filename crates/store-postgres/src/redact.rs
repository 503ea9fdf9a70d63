//! Database addresses as logs and errors may show them: with every password hidden, whatever characters it holds.
//!
//! tokio-postgres reads a password from three places: the user info of a URL (`postgres://user:password@host/db`,
//! where a raw password may hold `/`, `?`, `:` or even `@`), a URL's query (`?password=…`), and libpq's key=value
//! strings (`host=db password=…`). [`redacted_url`] hides all three, and answers [`UNREADABLE_ADDRESS`] for any text it
//! cannot read as either form, rather than guess where a password could be.

/// What [`redacted_url`] answers for a text that is neither a URL nor a key=value connection string.
pub const UNREADABLE_ADDRESS: &str = "(a database address that is not shown: it cannot be read)";

/// What a password is replaced with.
const HIDDEN: &str = "***";

/// `url` with every password replaced by `***`, for logs and errors: everything between `://` and the last `@` but
/// the user name (the text before the first `:`), every `password=` value of a URL's query or of a key=value string,
/// and a host's port that is not a number (a password typed where no `@` follows it). Any other text — one this
/// function cannot read — becomes [`UNREADABLE_ADDRESS`].
pub fn redacted_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) if is_scheme(scheme) => redacted_address(scheme, rest),
        Some(_) => UNREADABLE_ADDRESS.to_owned(),
        None => redacted_key_values(url).unwrap_or_else(|| UNREADABLE_ADDRESS.to_owned()),
    }
}

/// Whether `store` names a PostgreSQL database (`postgres://` or `postgresql://`).
pub fn is_postgres_url(store: &str) -> bool {
    store.starts_with("postgres://") || store.starts_with("postgresql://")
}

/// A URL scheme: a letter, then letters, digits, `+`, `-` or `.`.
fn is_scheme(scheme: &str) -> bool {
    let mut chars = scheme.chars();
    chars.next().is_some_and(|first| first.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// The part of a URL after `scheme://`, redacted.
fn redacted_address(scheme: &str, rest: &str) -> String {
    // A raw password may hold any character, `@` included: everything up to the last `@` is the user info. (A query
    // that holds an `@` then hides more than it needs to, never less.)
    let (user_info, address) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let (location, query) = match address.split_once('?') {
        Some((location, query)) => (location, Some(query)),
        None => (address, None),
    };
    let mut shown = format!("{scheme}://");
    if let Some(user_info) = user_info {
        let (user, password) = match user_info.split_once(':') {
            Some((user, _)) => (user, Some(HIDDEN)),
            None => (user_info, None),
        };
        // A user name holds none of these; text that does is not a user name (a query with an `@` in it, say).
        if user.contains(['/', '?', '&', '=', '#']) {
            shown.push_str(HIDDEN);
        } else {
            shown.push_str(user);
            if let Some(password) = password {
                shown.push(':');
                shown.push_str(password);
            }
        }
        shown.push('@');
    }
    shown.push_str(&redacted_location(location));
    if let Some(query) = query {
        shown.push('?');
        shown.push_str(&redacted_query(query));
    }
    shown
}

/// `host:port,host:port/database` with each port that is not a number hidden.
fn redacted_location(location: &str) -> String {
    let (hosts, path) = match location.split_once('/') {
        Some((hosts, path)) => (hosts, Some(path)),
        None => (location, None),
    };
    let hosts: Vec<String> = hosts
        .split(',')
        .map(|host| {
            // `[::1]:5432`: the port follows the bracket.
            let port_from = host.rfind(']').unwrap_or(0);
            match host[port_from..].find(':').map(|colon| port_from + colon) {
                Some(colon) if !host[colon + 1..].bytes().all(|byte| byte.is_ascii_digit()) => {
                    format!("{}:{HIDDEN}", &host[..colon])
                }
                _ => host.to_owned(),
            }
        })
        .collect();
    match path {
        Some(path) => format!("{}/{path}", hosts.join(",")),
        None => hosts.join(","),
    }
}

/// A URL's query with the value of every parameter whose (percent-decoded) name holds `password` hidden.
fn redacted_query(query: &str) -> String {
    let parameters: Vec<String> = query
        .split('&')
        .map(|parameter| match parameter.split_once('=') {
            Some((key, _)) if is_secret(&percent_decoded(key)) => format!("{key}={HIDDEN}"),
            _ => parameter.to_owned(),
        })
        .collect();
    parameters.join("&")
}

/// Whether a connection parameter holds a secret: `password`, and any other whose name says it is one.
fn is_secret(key: &str) -> bool {
    key.to_ascii_lowercase().contains("password")
}

/// `text` with its `%XX` escapes decoded, as tokio-postgres decodes a query's keys.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = bytes
            .get(index + 1..index + 3)
            .filter(|_| bytes[index] == b'%')
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                index += 3;
            }
            None => {
                decoded.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// A libpq key=value connection string with every secret's value hidden, read by tokio-postgres's rules (`key =
/// value`, a value plain or in single quotes, `\` escaping the next character); `None` when it is not one.
fn redacted_key_values(text: &str) -> Option<String> {
    let mut chars = text.char_indices().peekable();
    let mut shown = String::with_capacity(text.len());
    let mut copied = 0;
    let mut n_parameters = 0;
    let position = |chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>| {
        chars.peek().map_or(text.len(), |(index, _)| *index)
    };
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let key_start = position(&mut chars);
        while chars.next_if(|(_, c)| !c.is_whitespace() && *c != '=').is_some() {}
        let key = &text[key_start..position(&mut chars)];
        if key.is_empty() {
            break;
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        chars.next_if(|(_, c)| *c == '=')?;
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let value_start = position(&mut chars);
        if chars.next_if(|(_, c)| *c == '\'').is_some() {
            loop {
                match chars.next()? {
                    (_, '\\') => {
                        chars.next()?;
                    }
                    (_, '\'') => break,
                    _ => {}
                }
            }
        } else {
            while let Some((_, c)) = chars.next_if(|(_, c)| !c.is_whitespace()) {
                if c == '\\' {
                    chars.next();
                }
            }
            if position(&mut chars) == value_start {
                return None;
            }
        }
        if is_secret(key) {
            shown.push_str(&text[copied..value_start]);
            shown.push_str(HIDDEN);
            copied = position(&mut chars);
        }
        n_parameters += 1;
    }
    if n_parameters == 0 || chars.peek().is_some() {
        return None;
    }
    shown.push_str(&text[copied..]);
    Some(shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(address: &str, expected: &str) {
        let shown = redacted_url(address);
        assert_eq!(shown, expected, "{address}");
        assert!(!shown.contains("s3cret") && !shown.contains("cr/et"), "a password shows: {shown}");
    }

    #[test]
    fn the_password_of_a_url_never_shows_whatever_it_holds() {
        check("postgres://dash:s3cret@db:5432/dash", "postgres://dash:***@db:5432/dash");
        check("postgres://dash:s3cr/et+A==@db:5432/dash", "postgres://dash:***@db:5432/dash");
        check("postgresql://dash:s3c?ret@db/dash", "postgresql://dash:***@db/dash");
        check("postgres://dash:s3c@ret@db/dash", "postgres://dash:***@db/dash");
        check("postgres://dash:s3cret:x@db", "postgres://dash:***@db");
        check("postgres://dash:@db/dash", "postgres://dash:***@db/dash");
        check("postgres://:s3cret@db/dash", "postgres://:***@db/dash");
        check(
            "postgres://dash:s3cret@[::1]:5432,db2:5433/dash",
            "postgres://dash:***@[::1]:5432,db2:5433/dash",
        );
    }

    #[test]
    fn what_holds_no_password_is_shown_as_it_is() {
        check("postgres://dash@db/dash", "postgres://dash@db/dash");
        check("postgresql://db/dash", "postgresql://db/dash");
        check("postgres://db:5432", "postgres://db:5432");
        check(
            "postgres://db/dash?sslmode=disable&application_name=x",
            "postgres://db/dash?sslmode=disable&application_name=x",
        );
        check("host=db user=dash dbname=dash", "host=db user=dash dbname=dash");
    }

    #[test]
    fn a_password_in_a_query_or_a_key_value_string_never_shows() {
        check("postgres://db/dash?password=s3cret", "postgres://db/dash?password=***");
        check(
            "postgres://db/dash?user=dash&PASSWORD=s3cret&sslmode=disable",
            "postgres://db/dash?user=dash&PASSWORD=***&sslmode=disable",
        );
        check(
            "postgres://db/dash?user=dash&pass%77ord=s3cret",
            "postgres://db/dash?user=dash&pass%77ord=***",
        );
        check("host=db password=s3cret dbname=dash", "host=db password=*** dbname=dash");
        check("host=db password = 's3c \\' ret' dbname=dash", "host=db password = *** dbname=dash");
        check("password=s3c\\ ret", "password=***");
        check("host=db sslpassword=s3cret", "host=db sslpassword=***");
    }

    #[test]
    fn a_query_with_an_at_hides_more_never_less() {
        check("postgres://dash:s3cret@db/dash?application_name=a@b", "postgres://dash:***@b");
        check("postgres://db/dash?password=s3cret@x", "postgres://***@x");
    }

    #[test]
    fn a_port_that_is_no_number_is_hidden() {
        check("postgres://dash:s3cret", "postgres://dash:***");
        check("postgres://dash:s3cret/db", "postgres://dash:***/db");
    }

    #[test]
    fn what_cannot_be_read_is_not_shown() {
        for unreadable in [
            "postgres:/dash:s3cret@db/dash",
            "postgres:dash:s3cret@db",
            "://dash:s3cret@db",
            "1x://dash:s3cret@db",
            "s3cret",
            "",
            "host=db password='s3cret",
            "host=db password",
            "host=db password=",
            "=s3cret",
        ] {
            check(unreadable, UNREADABLE_ADDRESS);
        }
    }
}
