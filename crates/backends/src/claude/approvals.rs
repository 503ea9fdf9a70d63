//! Asking the dashboard before Claude Code uses a tool it may not use on its own: the run is started with
//! `--mcp-config` naming the execution's MCP endpoint on the dashboard (`{callback.url}/mcp`, authenticated with the
//! execution's callback token) and `--permission-prompt-tool mcp__dashboard__approve`, so each permission prompt
//! becomes a call of the dashboard's `approve` tool, which the server answers through the run's approval gate.

use std::time::Duration;

use dashboard_backend_api::Callback;
use serde_json::json;
use tokio::time::Instant;

/// The name the dashboard's MCP server has in Claude Code's config; its tools are `mcp__dashboard__*`.
pub(crate) const SERVER_NAME: &str = "dashboard";
/// The permission prompt tool: the `approve` tool of the dashboard's MCP server.
pub(crate) const PROMPT_TOOL: &str = "mcp__dashboard__approve";
/// The variable that carries the callback token to Claude Code, which puts it in the MCP server's `Authorization`
/// header (`${VAR}` in `--mcp-config` is read from its environment): the token never appears in the argv, which
/// every user of the machine can read.
pub(crate) const TOKEN_VARIABLE: &str = "DASHBOARD_CALLBACK_TOKEN";

/// How long Claude Code waits for the tool's answer beyond the run's deadline: the engine stops the run at the
/// deadline, so the wait never needs to outlast it by much.
const WAIT_PAST_DEADLINE: Duration = Duration::from_secs(60);
/// The least wait Claude Code accepts for an HTTP MCP tool (its default, 60 s).
const LEAST_WAIT: Duration = Duration::from_secs(60);
/// The longest wait Claude Code accepts (a JavaScript timer's limit, about 24.8 days): a run without a deadline waits
/// as long as its approval may (the approval's expiry answers the tool).
const LONGEST_WAIT_MS: u64 = 2_147_483_647;

/// The arguments that make Claude Code ask the dashboard (`--mcp-config=JSON`, `--permission-prompt-tool=…`) and the
/// variable holding the token they name.
pub(crate) fn prompt_tool(callback: &Callback, deadline: Option<Instant>) -> (Vec<String>, (String, String)) {
    let config = json!({"mcpServers": {SERVER_NAME: {
        "type": "http",
        "url": format!("{}/mcp", callback.url.trim_end_matches('/')),
        "headers": {"Authorization": format!("Bearer ${{{TOKEN_VARIABLE}}}")},
        // Claude Code gives up on a tool call after this many milliseconds (60 s by default, progress or not, in
        // 2.1): a person deciding an approval takes longer.
        "timeout": tool_timeout_ms(deadline),
    }}});
    let args = vec![format!("--mcp-config={config}"), format!("--permission-prompt-tool={PROMPT_TOOL}")];
    (args, (TOKEN_VARIABLE.to_owned(), callback.token.clone()))
}

/// How long Claude Code may wait for one answer of the tool: until a minute past the run's deadline, or as long as it
/// can without a deadline.
pub(crate) fn tool_timeout_ms(deadline: Option<Instant>) -> u64 {
    let Some(deadline) = deadline else { return LONGEST_WAIT_MS };
    let wait = deadline.saturating_duration_since(Instant::now()) + WAIT_PAST_DEADLINE;
    u64::try_from(wait.max(LEAST_WAIT).as_millis()).unwrap_or(LONGEST_WAIT_MS).min(LONGEST_WAIT_MS)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn callback() -> Callback {
        Callback { url: "http://127.0.0.1:8000/api/executions/0199".into(), token: "secret-token".into() }
    }

    #[test]
    fn the_prompt_tool_is_the_dashboards_mcp_tool_and_the_token_stays_out_of_the_argv() {
        let (args, (variable, token)) = prompt_tool(&callback(), None);
        assert_eq!(args[1], "--permission-prompt-tool=mcp__dashboard__approve");
        let config: Value =
            serde_json::from_str(args[0].strip_prefix("--mcp-config=").expect("the flag")).expect("JSON");
        assert_eq!(
            config,
            json!({"mcpServers": {"dashboard": {"type": "http",
                "url": "http://127.0.0.1:8000/api/executions/0199/mcp",
                "headers": {"Authorization": "Bearer ${DASHBOARD_CALLBACK_TOKEN}"},
                "timeout": 2_147_483_647_u64}}})
        );
        assert!(args.iter().all(|arg| !arg.contains("secret-token")), "{args:?}");
        assert_eq!((variable.as_str(), token.as_str()), ("DASHBOARD_CALLBACK_TOKEN", "secret-token"));
    }

    #[test]
    fn the_tool_may_wait_until_a_minute_past_the_deadline() {
        let in_an_hour = tool_timeout_ms(Some(Instant::now() + Duration::from_secs(3600)));
        assert!((3_659_000..=3_660_000).contains(&in_an_hour), "{in_an_hour}");
        assert_eq!(tool_timeout_ms(Some(Instant::now())), 60_000);
        assert_eq!(
            tool_timeout_ms(Some(Instant::now() + Duration::from_secs(90 * 24 * 3600))),
            2_147_483_647
        );
    }
}
