//! The MCP handler: each function is a tool that triggers it and waits for its output; the built-in tools read and
//! steer executions and approvals. Every call runs as the caller's principal, so scopes, backend grants and budgets
//! hold exactly as in the API; a refusal is a tool error saying why.

use std::time::Duration;

use dashboard_backend_api::Principal;
use dashboard_core::{ApprovalId, Decision, Execution, ExecutionId, ExecutionStatus, Function, error_chain};
use dashboard_engine::{BusMessage, Dashboard, DecideRequest, TriggerRequest};
use dashboard_store::{ApprovalQuery, ExecutionQuery};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, JsonObject, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

/// The built-in tools, by name; a function with one of these names is listed as `fn.<name>`.
const BUILTINS: [&str; 6] =
    ["list_executions", "get_execution", "get_logs", "cancel_execution", "list_approvals", "decide_approval"];

/// What a tool call answers: its result, or a refusal to show the caller as a tool error.
type Answer = Result<CallToolResult, String>;

/// Serves one MCP request (rmcp builds one per request: the transport is stateless).
pub(crate) struct McpHandler {
    dashboard: Dashboard,
    /// How long a function tool waits for the execution's end.
    wait: Duration,
}

impl McpHandler {
    /// A handler over `dashboard`.
    pub(crate) fn new(dashboard: Dashboard, wait: Duration) -> Self {
        Self { dashboard, wait }
    }

    async fn tools(&self) -> Result<Vec<Tool>, ErrorData> {
        let functions = self.dashboard.store().list_functions().await.map_err(internal)?;
        let mut tools: Vec<Tool> = functions.iter().map(function_tool).collect();
        tools.extend(builtin_tools());
        Ok(tools)
    }

    async fn call(
        &self,
        name: &str,
        arguments: JsonObject,
        principal: &Principal,
        stop: &CancellationToken,
    ) -> Answer {
        match name {
            "list_executions" => self.list_executions(parse(arguments)?).await,
            "get_execution" => {
                let IdArgs { id } = parse(arguments)?;
                let id = execution_id(&id)?;
                match self.dashboard.store().get_execution(id).await.map_err(|e| error_chain(&e))? {
                    Some(execution) => Ok(CallToolResult::structured(to_value(&execution)?)),
                    None => Err(format!("there is no execution {id}")),
                }
            }
            "get_logs" => {
                let LogsArgs { id, after, limit } = parse(arguments)?;
                let limit = bounded_limit(limit, 200, 1000)?;
                let lines = self
                    .dashboard
                    .store()
                    .read_logs(execution_id(&id)?, after.unwrap_or(0), limit)
                    .await
                    .map_err(|e| error_chain(&e))?;
                Ok(CallToolResult::structured(json!({ "lines": to_value(&lines)? })))
            }
            "cancel_execution" => {
                let IdArgs { id } = parse(arguments)?;
                let execution = self
                    .dashboard
                    .cancel(principal, execution_id(&id)?)
                    .await
                    .map_err(|e| error_chain(&e))?;
                Ok(CallToolResult::structured(to_value(&execution)?))
            }
            "list_approvals" => {
                let ApprovalsArgs { pending_only, execution, limit } = parse(arguments)?;
                let query = ApprovalQuery {
                    pending_only: pending_only.unwrap_or(true),
                    execution: execution.as_deref().map(execution_id).transpose()?,
                    limit: bounded_limit(limit, 50, 100)?,
                };
                let approvals =
                    self.dashboard.store().list_approvals(&query).await.map_err(|e| error_chain(&e))?;
                Ok(CallToolResult::structured(json!({ "items": to_value(&approvals)? })))
            }
            "decide_approval" => {
                let DecideArgs { id, decision, note } = parse(arguments)?;
                let id = id.parse::<ApprovalId>().map_err(|_| format!("{id:?} is not an approval id"))?;
                let request = DecideRequest { decision, note, answers: None };
                let approval = self
                    .dashboard
                    .decide_approval(principal, id, request)
                    .await
                    .map_err(|e| error_chain(&e))?;
                Ok(CallToolResult::structured(to_value(&approval)?))
            }
            _ => {
                let function =
                    name.strip_prefix("fn.").filter(|rest| BUILTINS.contains(rest)).unwrap_or(name);
                self.run_function(function, arguments, principal, stop).await
            }
        }
    }

    async fn list_executions(&self, args: ListArgs) -> Answer {
        let query = ExecutionQuery {
            status: args
                .status
                .map(|status| status.parse::<ExecutionStatus>().map_err(|error| format!("status: {error}")))
                .transpose()?,
            function: args.function,
            before: args.before.as_deref().map(execution_id).transpose()?,
            limit: bounded_limit(args.limit, 20, 100)?,
            ..ExecutionQuery::default()
        };
        let page = self.dashboard.store().list_executions(&query).await.map_err(|e| error_chain(&e))?;
        Ok(CallToolResult::structured(
            json!({ "items": to_value(&page.items)?, "next_cursor": to_value(&page.next_cursor)? }),
        ))
    }

    /// Triggers `name` with the arguments as its input (unwrapped from `input` when its schema is not an object's),
    /// then waits for the end.
    async fn run_function(
        &self,
        name: &str,
        arguments: JsonObject,
        principal: &Principal,
        stop: &CancellationToken,
    ) -> Answer {
        let functions = self.dashboard.store().list_functions().await.map_err(|e| error_chain(&e))?;
        let Some(function) = functions.iter().find(|function| function.name == name) else {
            return Err(format!("there is no tool or function {name:?}"));
        };
        let input = match wrapped_schema(function) {
            Some(_) => arguments.get("input").cloned().unwrap_or(Value::Null),
            None => Value::Object(arguments),
        };
        let request =
            TriggerRequest { function: function.name.clone(), input, backend: None, idempotency_key: None };
        let triggered = self.dashboard.trigger(principal, request).await.map_err(|e| error_chain(&e))?;
        let execution = self.wait_for_end(triggered.execution, stop).await?;
        Ok(outcome(&execution))
    }

    /// The execution once it has ended, or as it is when the wait is over or the client has gone away (which does
    /// not cancel it).
    async fn wait_for_end(
        &self,
        execution: Execution,
        stop: &CancellationToken,
    ) -> Result<Execution, String> {
        let id = execution.id;
        let mut bus = self.dashboard.subscribe();
        let deadline = tokio::time::Instant::now() + self.wait;
        loop {
            // Read after subscribing, so that no end is missed between the two.
            let execution =
                match self.dashboard.store().get_execution(id).await.map_err(|e| error_chain(&e))? {
                    Some(execution) => execution,
                    None => return Err(format!("the execution {id} is gone")),
                };
            if execution.status.is_terminal() || tokio::time::Instant::now() >= deadline {
                return Ok(execution);
            }
            loop {
                tokio::select! {
                    () = stop.cancelled() => return Ok(execution),
                    () = tokio::time::sleep_until(deadline) => break,
                    message = bus.recv() => match message {
                        Ok(BusMessage::Event(event)) if event.execution_id == Some(id) => break,
                        Ok(_) => {}
                        Err(RecvError::Lagged(_)) => break,
                        Err(RecvError::Closed) => return Ok(execution),
                    },
                }
            }
        }
    }
}

impl ServerHandler for McpHandler {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_instructions(
            "Agent Dashboard: each function is a tool that runs it and answers with its output (or, when it is \
             still running after the wait, its execution id and status: follow it with get_execution and \
             get_logs). The other tools read executions, logs and approvals, cancel executions and decide \
             approvals.",
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools().await?))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let principal = context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Principal>())
            .cloned()
            .ok_or_else(|| ErrorData::internal_error("the caller of this request is unknown", None))?;
        let arguments = request.arguments.unwrap_or_default();
        let answer = self.call(&request.name, arguments, &principal, &context.ct).await;
        Ok(answer.unwrap_or_else(|refusal| CallToolResult::error(vec![ContentBlock::text(refusal)])).into())
    }
}

/// A function's tool: its name (`fn.<name>` when a built-in has it), description and input schema.
fn function_tool(function: &Function) -> Tool {
    let name = if BUILTINS.contains(&function.name.as_str()) {
        format!("fn.{}", function.name)
    } else {
        function.name.clone()
    };
    let schema = match (wrapped_schema(function), &function.input_schema) {
        (Some(schema), _) => schema,
        (None, Value::Object(schema)) if !schema.is_empty() => schema.clone(),
        (None, _) => object(json!({ "type": "object" })),
    };
    let description = if function.description.is_empty() {
        format!("Runs the function {}.", function.name)
    } else {
        function.description.clone()
    };
    Tool::new(name, description, schema)
}

/// The tool's schema when the function's input is not an object (MCP wants one): `{input: <the schema>}`.
fn wrapped_schema(function: &Function) -> Option<JsonObject> {
    match &function.input_schema {
        Value::Null => None,
        Value::Object(schema) if schema.is_empty() || schema.get("type") == Some(&json!("object")) => None,
        schema => Some(object(json!({
            "type": "object",
            "properties": { "input": schema },
            "required": ["input"],
        }))),
    }
}

fn builtin_tools() -> Vec<Tool> {
    let read = ToolAnnotations::new().read_only(true);
    let id = |what: &str| json!({ "type": "string", "format": "uuid", "description": what });
    vec![
        Tool::new(
            "list_executions",
            "Lists executions, newest first.",
            object(json!({
                "type": "object",
                "properties": {
                    "status": { "type": "string", "enum": ["queued", "running", "succeeded", "failed", "timed_out", "cancelled"] },
                    "function": { "type": "string", "description": "Only this function's executions." },
                    "limit": { "type": "integer", "minimum": 1, "maximum": 100 },
                    "before": id("The next_cursor of the previous page."),
                },
            })),
        )
        .annotate(read.clone()),
        Tool::new(
            "get_execution",
            "One execution: its status, input, output or error, usage.",
            object(json!({ "type": "object", "properties": { "id": id("The execution.") }, "required": ["id"] })),
        )
        .annotate(read.clone()),
        Tool::new(
            "get_logs",
            "An execution's log lines after `after` (a seq).",
            object(json!({
                "type": "object",
                "properties": {
                    "id": id("The execution."),
                    "after": { "type": "integer", "minimum": 0 },
                    "limit": { "type": "integer", "minimum": 1, "maximum": 1000 },
                },
                "required": ["id"],
            })),
        )
        .annotate(read.clone()),
        Tool::new(
            "cancel_execution",
            "Cancels a queued or running execution (needs the trigger scope).",
            object(json!({ "type": "object", "properties": { "id": id("The execution.") }, "required": ["id"] })),
        )
        .annotate(ToolAnnotations::new().destructive(true)),
        Tool::new(
            "list_approvals",
            "Lists approvals, pending ones only by default.",
            object(json!({
                "type": "object",
                "properties": {
                    "pending_only": { "type": "boolean", "default": true },
                    "execution": id("Only this execution's approvals."),
                    "limit": { "type": "integer", "minimum": 1, "maximum": 100, "default": 50 },
                },
            })),
        )
        .annotate(read),
        Tool::new(
            "decide_approval",
            "Approves or declines a pending approval (needs the trigger scope).",
            object(json!({
                "type": "object",
                "properties": {
                    "id": id("The approval."),
                    "decision": { "type": "string", "enum": ["approve", "approve_for_session", "decline"] },
                    "note": { "type": "string" },
                },
                "required": ["id", "decision"],
            })),
        ),
    ]
}

/// What a function tool answers for its execution.
fn outcome(execution: &Execution) -> CallToolResult {
    let id = execution.id.to_string();
    match execution.status {
        ExecutionStatus::Succeeded => match &execution.output {
            Some(Value::Object(output)) => CallToolResult::structured(Value::Object(output.clone())),
            output => CallToolResult::structured(json!({ "output": output })),
        },
        status if status.is_terminal() => {
            let error = execution.error.clone().unwrap_or_else(|| format!("the execution {status}"));
            let mut result =
                CallToolResult::structured_error(json!({ "id": id, "status": status, "error": error }));
            result.content = vec![ContentBlock::text(format!("execution {id} {status}: {error}"))];
            result
        }
        status => {
            let mut result = CallToolResult::structured(json!({ "id": id, "status": status }));
            result.content =
                vec![ContentBlock::text(format!("execution {id} is {status}; use get_execution"))];
            result
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdArgs {
    id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListArgs {
    status: Option<String>,
    function: Option<String>,
    limit: Option<usize>,
    before: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsArgs {
    id: String,
    after: Option<u64>,
    limit: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalsArgs {
    pending_only: Option<bool>,
    execution: Option<String>,
    limit: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecideArgs {
    id: String,
    decision: Decision,
    note: Option<String>,
}

fn parse<T: DeserializeOwned>(arguments: JsonObject) -> Result<T, String> {
    serde_json::from_value(Value::Object(arguments)).map_err(|error| format!("the arguments: {error}"))
}

fn execution_id(id: &str) -> Result<ExecutionId, String> {
    id.parse::<ExecutionId>().map_err(|_| format!("{id:?} is not an execution id"))
}

fn bounded_limit(limit: Option<usize>, default: usize, max: usize) -> Result<usize, String> {
    match limit.unwrap_or(default) {
        limit if (1..=max).contains(&limit) => Ok(limit),
        limit => Err(format!("limit: {limit} is not between 1 and {max}")),
    }
}

fn to_value<T: serde::Serialize>(value: &T) -> Result<Value, String> {
    serde_json::to_value(value).map_err(|error| format!("the answer cannot be written as JSON: {error}"))
}

/// A schema written with `json!`, which is always an object here.
fn object(value: Value) -> JsonObject {
    match value {
        Value::Object(object) => object,
        _ => JsonObject::new(),
    }
}

fn internal(error: impl std::error::Error) -> ErrorData {
    ErrorData::internal_error(error_chain(&error), None)
}
