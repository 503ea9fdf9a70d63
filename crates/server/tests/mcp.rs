//! The MCP server at `/mcp` through rmcp's own client over streamable HTTP, with auth on: the functions are tools
//! with their schemas, calling one runs it to its output, a `read` token may list but not trigger, and no token is
//! refused before MCP.

mod common;

use common::{TestServer, server_with};
use dashboard_backend_api::Scope;
use dashboard_server::TokenSpec;
use rmcp::model::{CallToolRequestParams, CallToolResult, JsonObject};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ServiceError, ServiceExt};
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-0123456789abcdef";
const READER: &str = "reader-token-0123456789abcdef";
const FUNCTION: &str = "hello-agent";

async fn guarded_server() -> TestServer {
    guarded_server_with(|_| {}).await
}

async fn guarded_server_with(adjust: impl FnOnce(&mut dashboard_server::ServerConfig)) -> TestServer {
    server_with(|config| {
        adjust(config);
        config.auth_tokens = vec![
            TokenSpec::from_secret("root", ADMIN, Scope::Admin),
            TokenSpec::from_secret("viewer", READER, Scope::Read),
        ];
    })
    .await
}

/// Connects an MCP client (it initializes at once) with `token`, or with none.
async fn connect(
    server: &TestServer,
    token: Option<&str>,
) -> Result<RunningService<RoleClient, ()>, rmcp::service::ClientInitializeError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", server.url));
    if let Some(token) = token {
        config = config.auth_header(token);
    }
    ().serve(StreamableHttpClientTransport::from_config(config)).await
}

async fn get_as_admin(server: &TestServer, path: &str) -> common::Answer {
    let answer = server.send(server.client.get(format!("{}{path}", server.url)).bearer_auth(ADMIN)).await;
    assert_eq!(answer.status, 200, "{path}: {:?}", answer.body);
    answer
}

fn arguments(value: Value) -> JsonObject {
    match value {
        Value::Object(object) => object,
        other => panic!("not an object: {other}"),
    }
}

fn text_of(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|content| content.as_text().map(|text| text.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn call(
    client: &RunningService<RoleClient, ()>,
    name: &str,
    args: Value,
) -> Result<CallToolResult, ServiceError> {
    client.call_tool(CallToolRequestParams::new(name.to_owned()).with_arguments(arguments(args))).await
}

#[tokio::test]
async fn functions_are_tools_that_run_to_their_output() {
    let server = guarded_server().await;
    let client = connect(&server, Some(ADMIN)).await.expect("the admin token connects");

    let tools = client.list_all_tools().await.expect("the tools are listed");
    let hello = tools.iter().find(|tool| tool.name == FUNCTION).expect("the example function is a tool");
    let function = get_as_admin(&server, &format!("/api/functions/{FUNCTION}")).await;
    assert_eq!(Value::Object((*hello.input_schema).clone()), function.body["input_schema"]);
    assert_eq!(hello.description.as_deref(), function.body["description"].as_str());
    for builtin in [
        "list_executions",
        "get_execution",
        "get_logs",
        "cancel_execution",
        "list_approvals",
        "decide_approval",
    ] {
        assert!(tools.iter().any(|tool| tool.name == builtin), "{builtin} is listed");
    }

    let result = call(&client, FUNCTION, json!({"name": "MCP", "steps": 2, "delay_ms": 0}))
        .await
        .expect("the call is answered");
    assert_eq!(result.is_error, Some(false), "{}", text_of(&result));
    let output = result.structured_content.clone().expect("the output is structured");
    assert_eq!(output["steps"], 2);
    assert_eq!(output["summary"], format!("{FUNCTION} finished 2 steps"));
    assert_eq!(
        serde_json::from_str::<Value>(&text_of(&result)).expect("the text is the output's JSON"),
        output
    );

    // The execution is the API's, triggered by the token's name.
    let listed = call(&client, "list_executions", json!({"function": FUNCTION})).await.expect("listed");
    let items = &listed.structured_content.expect("structured")["items"];
    assert_eq!(items.as_array().map(Vec::len), Some(1), "{items}");
    assert_eq!(items[0]["status"], "succeeded");
    assert_eq!(items[0]["triggered_by"], "root");

    // A failing run is a tool error with its reason.
    let failed =
        call(&client, FUNCTION, json!({"steps": 1, "delay_ms": 0, "fail": true})).await.expect("answered");
    assert_eq!(failed.is_error, Some(true));
    assert_eq!(failed.structured_content.expect("structured")["status"], "failed");

    client.cancel().await.expect("the client stops");
    server.stop().await;
}

#[tokio::test]
async fn a_read_token_lists_but_cannot_trigger_and_no_token_is_refused() {
    let server = guarded_server().await;
    let reader = connect(&server, Some(READER)).await.expect("the read token connects");
    let tools = reader.list_all_tools().await.expect("a reader lists the tools");
    assert!(tools.iter().any(|tool| tool.name == FUNCTION));

    let refused = call(&reader, FUNCTION, json!({"steps": 1})).await.expect("a refusal is a tool result");
    assert_eq!(refused.is_error, Some(true));
    let text = text_of(&refused);
    assert!(text.contains("read") && text.contains("scope"), "the refusal names the scope: {text}");
    let executions = get_as_admin(&server, "/api/executions").await;
    assert_eq!(executions.body["items"], json!([]), "nothing was triggered");
    reader.cancel().await.expect("the client stops");

    // Stateless: no stream of its own to GET, no session to DELETE.
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let request =
            server.client.request(method.clone(), format!("{}/mcp", server.url)).bearer_auth(READER);
        assert_eq!(server.send(request).await.status, 405, "{method} /mcp");
    }

    let refused =
        server.client.post(format!("{}/mcp", server.url)).json(&json!({})).send().await.expect("an answer");
    assert_eq!(refused.status(), 401);
    let challenge = refused.headers().get("www-authenticate").and_then(|value| value.to_str().ok());
    assert_eq!(challenge, Some("Bearer"), "an MCP client learns that it needs a bearer token");
    let error = connect(&server, None).await.expect_err("no token, no session");
    // rmcp's client reads the challenge: it says that the server wants a bearer token.
    assert!(format!("{error:?}").contains("AuthRequired"), "{error:?}");

    server.stop().await;
}

#[tokio::test]
async fn a_run_still_going_after_the_wait_answers_its_id_and_can_be_cancelled() {
    let server = guarded_server_with(|config| config.mcp_wait_secs = 0).await;
    let admin = connect(&server, Some(ADMIN)).await.expect("the admin token connects");
    let result = call(&admin, FUNCTION, json!({"hang": true})).await.expect("answered");
    assert_eq!(result.is_error, Some(false), "still running is no error: {}", text_of(&result));
    let running = result.structured_content.clone().expect("structured");
    let id = running["id"].as_str().expect("the execution's id").to_owned();
    assert!(matches!(running["status"].as_str(), Some("queued" | "running")), "{running}");
    assert!(text_of(&result).contains("get_execution"), "{}", text_of(&result));

    let reader = connect(&server, Some(READER)).await.expect("the read token connects");
    let seen = call(&reader, "get_execution", json!({"id": id})).await.expect("answered");
    assert_eq!(seen.structured_content.expect("structured")["function"], FUNCTION);
    let refused = call(&reader, "cancel_execution", json!({"id": id})).await.expect("answered");
    assert_eq!(refused.is_error, Some(true), "a reader cannot cancel");
    let unknown = call(&reader, "get_execution", json!({"id": "nope"})).await.expect("answered");
    assert_eq!(unknown.is_error, Some(true));

    let cancelled = call(&admin, "cancel_execution", json!({"id": id})).await.expect("answered");
    assert_eq!(cancelled.is_error, Some(false), "{}", text_of(&cancelled));
    let mut status = Value::Null;
    for _ in 0..300 {
        let seen = call(&admin, "get_execution", json!({"id": id})).await.expect("answered");
        status = seen.structured_content.expect("structured")["status"].clone();
        if status == "cancelled" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, "cancelled");

    admin.cancel().await.expect("the client stops");
    reader.cancel().await.expect("the client stops");
    server.stop().await;
}
