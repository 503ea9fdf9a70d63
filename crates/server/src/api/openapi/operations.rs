//! The description of every operation of the API: what it does, what it reads, what it answers. Listed once, here;
//! the route table decides which of them the document holds.

use actix_web::http::Method;
use serde_json::json;

use super::{Operation, operation, schema_ref};
use crate::api::approvals::ListQuery as ApprovalsQuery;
use crate::api::events::EventsQuery;
use crate::api::executions::ListQuery;
use crate::api::items::ItemsQuery;
use crate::api::logs::LogsQuery;
use crate::api::notifications::DeliveriesQuery;
use crate::api::streams::StreamQuery;

/// The routes of a function, by its name.
pub(super) const FUNCTION_LINKS: &[(&str, &str, &str)] =
    &[("getFunction", "key", "name"), ("replaceFunction", "key", "name"), ("deleteFunction", "key", "name")];
/// The routes of an execution, by its id.
pub(super) const EXECUTION_LINKS: &[(&str, &str, &str)] = &[
    ("getExecution", "id", "id"),
    ("cancelExecution", "id", "id"),
    ("retryExecution", "id", "id"),
    ("continueExecution", "id", "id"),
    ("readLogs", "id", "id"),
    ("listItems", "id", "id"),
    ("getDiff", "id", "id"),
];

/// The routes of an approval, by its id.
pub(super) const APPROVAL_LINKS: &[(&str, &str, &str)] =
    &[("getApproval", "id", "id"), ("decideApproval", "id", "id")];

/// Every operation of the API, described once.
pub(super) fn operations() -> Vec<Operation> {
    use Method as M;
    let text = |media: &str| Some(json!({media: {"schema": {"type": "string"}}}));
    vec![
        operation(M::GET, "/healthz", "health", "Whether the server and its store answer")
            .answer(200, "The store answers.", Some("Health"))
            .answer(503, "The store does not answer.", Some("Health")),
        operation(M::GET, "/metrics", "metrics", "Prometheus metrics").answer_with(
            200,
            "The metrics in the Prometheus text format.",
            text("text/plain"),
        ),
        operation(M::GET, "/api/openapi.json", "openapi", "This document").answer_with(
            200,
            "The OpenAPI document.",
            Some(json!({"application/json": {"schema": {"type": "object"}}})),
        ),
        operation(M::GET, "/api/functions", "listFunctions", "Every function, sorted by name").answer(
            200,
            "The functions.",
            Some("FunctionList"),
        ),
        operation(M::POST, "/api/functions", "createFunction", "Register a function")
            .body("FunctionSpec")
            .answer(201, "The new function (version 1).", Some("Function"))
            .location(201)
            .links(201, FUNCTION_LINKS)
            .errors(&[409]),
        operation(M::GET, "/api/functions/{key}", "getFunction", "A function, by id or name").answer(
            200,
            "The function.",
            Some("Function"),
        ),
        operation(M::PUT, "/api/functions/{key}", "replaceFunction", "Replace a function (version + 1)")
            .body("FunctionReplace")
            .answer(200, "The function's new version.", Some("Function"))
            .errors(&[409]),
        operation(
            M::DELETE,
            "/api/functions/{key}",
            "deleteFunction",
            "Delete a function; its executions are kept",
        )
        .answer(204, "Deleted.", None),
        operation(M::GET, "/api/executions", "listExecutions", "Executions, newest first, a page at a time")
            .query::<ListQuery>()
            .answer(200, "A page of executions.", Some("ExecutionPage")),
        operation(M::POST, "/api/executions", "triggerExecution", "Trigger an execution of a function")
            .header("Idempotency-Key", "Makes repeating the trigger safe (or `idempotency_key` in the body).")
            .body("TriggerBody")
            .answer(202, "The new execution, queued.", Some("Execution"))
            .location(202)
            .links(202, EXECUTION_LINKS)
            .answer(200, "The first execution of a repeated idempotency key.", Some("Execution"))
            .location(200)
            .errors(&[404, 409, 429]),
        operation(M::GET, "/api/executions/{id}", "getExecution", "An execution").answer(
            200,
            "The execution.",
            Some("Execution"),
        ),
        operation(M::POST, "/api/executions/{id}/cancel", "cancelExecution", "Cancel an execution")
            .answer(
                202,
                "The execution as it is; it becomes `cancelled` once its backend stops.",
                Some("Execution"),
            )
            .errors(&[409]),
        operation(M::POST, "/api/executions/{id}/retry", "retryExecution", "Run a finished execution again")
            .answer(202, "The new execution (`retry_of`, `attempt + 1`).", Some("Execution"))
            .location(202)
            .links(202, EXECUTION_LINKS)
            .errors(&[409, 429]),
        operation(
            M::POST,
            "/api/executions/{id}/continue",
            "continueExecution",
            "Run the next turn of an execution's session",
        )
        .body("ContinueBody")
        .answer(
            202,
            "The new execution: the same function and backend, `continues`, the same `session_id`, `attempt` 1.",
            Some("Execution"),
        )
        .location(202)
        .links(202, EXECUTION_LINKS)
        .errors(&[409, 429]),
        operation(M::GET, "/api/executions/{id}/logs", "readLogs", "An execution's log, after a cursor")
            .query::<LogsQuery>()
            .answer_with(
                200,
                "A page of log lines; with `format=text`, the whole log as a text download.",
                Some(json!({
                    "application/json": {"schema": schema_ref("LogsPage")},
                    "text/plain": {"schema": {"type": "string"}},
                })),
            ),
        operation(
            M::GET,
            "/api/executions/{id}/items",
            "listItems",
            "An execution's transcript items, after a cursor",
        )
        .query::<ItemsQuery>()
        .answer(200, "A page of items, each as last stored.", Some("ItemsPage")),
        operation(M::GET, "/api/executions/{id}/diff", "getDiff", "The unified diff of an execution's run")
            .answer_with(
                200,
                "The diff its backend last reported, stored with the final status (cut past 4 MiB).",
                text("text/x-diff"),
            )
            .answer_with(204, "The execution has no diff (yet).", None),
        operation(M::POST, "/api/executions/{id}/logs", "reportLogs", "A remote agent reports log lines")
            .body("LogsBody")
            .answer(200, "The lines are stored.", Some("LogsReceived"))
            .errors(&[409]),
        operation(
            M::POST,
            "/api/executions/{id}/status",
            "reportStatus",
            "A remote agent reports its status",
        )
        .body("StatusBody")
        .answer(200, "The execution; a report on a finished execution changes nothing.", Some("Execution"))
        .errors(&[409]),
        operation(
            M::GET,
            "/api/executions/{id}/logs/stream",
            "streamLogs",
            "An execution's status, log and transcript items (SSE)",
        )
        .query::<StreamQuery>()
        .header("Last-Event-ID", "Resume after this seq (a whole number).")
        .answer_with(
            200,
            "`event: status`, `event: log` and `event: item` messages, until the terminal status.",
            text("text/event-stream"),
        ),
        // The permission tool a running agent asks through (`api/permission_tool.rs`): MCP over JSON-RPC, any message.
        Operation {
            body: Some(json!({
                "required": true,
                "content": {"application/json": {"schema": {"type": "object", "description": "One JSON-RPC message."}}},
            })),
            ..operation(
                M::POST,
                "/api/executions/{id}/mcp",
                "permissionTool",
                "The permission tool a running agent asks through (MCP, JSON-RPC)",
            )
        }
        .answer_with(
            200,
            "The JSON-RPC answer; a `tools/call` that waits for a person is an SSE stream of progress notifications \
             ending with the answer.",
            Some(json!({
                "application/json": {"schema": {"type": "object"}},
                "text/event-stream": {"schema": {"type": "string"}},
            })),
        )
        .answer_with(202, "A notification: taken, nothing to answer.", None),
        operation(M::GET, "/api/executions/{id}/mcp", "permissionToolStream", "Not served: no stream of its own")
            .answer_with(405, "This server opens no stream of its own (`Allow: POST`).", None),
        operation(M::GET, "/api/events", "listEvents", "The activity feed, oldest first, after a cursor")
            .query::<EventsQuery>()
            .answer(200, "A page of events.", Some("EventsPage")),
        operation(M::GET, "/api/events/stream", "streamEvents", "The activity feed, live (SSE)")
            .query::<StreamQuery>()
            .header("Last-Event-ID", "Resume after this event id (a whole number).")
            .answer_with(200, "An `event: event` message for every new event.", text("text/event-stream")),
        operation(M::GET, "/api/approvals", "listApprovals", "Approvals: the pending ones, or all of them")
            .query::<ApprovalsQuery>()
            .answer(
                200,
                "The approvals: pending ones oldest first; with `status=all`, newest first.",
                Some("ApprovalList"),
            ),
        operation(M::GET, "/api/approvals/{id}", "getApproval", "An approval")
            .answer(200, "The approval.", Some("Approval"))
            .links(200, APPROVAL_LINKS),
        operation(M::POST, "/api/approvals/{id}", "decideApproval", "Decide a pending approval")
            .body("DecideBody")
            .answer(
                200,
                "The approval as decided; the waiting agent has been told, and its execution runs again once none of \
                 its approvals is pending.",
                Some("Approval"),
            )
            .errors(&[409]),
        operation(
            M::GET,
            "/api/backends",
            "listBackends",
            "The configured backends and whether they are ready",
        )
        .answer(200, "The backends; never a secret.", Some("BackendList")),
        operation(
            M::GET,
            "/api/instances",
            "listInstances",
            "The dashboard instances sharing this store, and which one answered",
        )
        .answer(
            200,
            "The live instances by id, `this` on the one that answered; on a store of its own, that one alone.",
            Some("InstanceList"),
        ),
        operation(
            M::GET,
            "/api/notifications/deliveries",
            "listDeliveries",
            "The notifications' deliveries (`[[notifications]]`), newest first",
        )
        .query::<DeliveriesQuery>()
        .answer(
            200,
            "A page of deliveries: pending (with the next attempt's time), delivered, or failed (given up after a day).",
            Some("DeliveryPage"),
        ),
        operation(M::GET, "/api/schedules", "listSchedules", "Every schedule, oldest first").answer(
            200,
            "The schedules, each with its next and last run.",
            Some("ScheduleList"),
        ),
        operation(M::POST, "/api/schedules", "createSchedule", "Create a schedule that triggers a function")
            .body("ScheduleSpec")
            .answer(201, "The new schedule, with its first due time.", Some("Schedule"))
            .location(201),
        operation(M::GET, "/api/schedules/{id}", "getSchedule", "A schedule").answer(
            200,
            "The schedule.",
            Some("Schedule"),
        ),
        operation(M::PUT, "/api/schedules/{id}", "replaceSchedule", "Replace a schedule's declaration")
            .body("ScheduleSpec")
            .answer(200, "The schedule, due next from now; its history kept.", Some("Schedule")),
        operation(M::DELETE, "/api/schedules/{id}", "deleteSchedule", "Delete a schedule; its executions are kept")
            .answer(204, "Deleted.", None),
        // The MCP server (`mcp/`): MCP streamable HTTP, stateless, any JSON-RPC message; rmcp answers.
        Operation {
            body: Some(json!({
                "required": true,
                "description": "One JSON-RPC message (MCP); send `Accept: application/json, text/event-stream`.",
                "content": {"application/json": {"schema": {}}},
            })),
            ..operation(M::POST, "/mcp", "mcp", "The MCP server: every function as a tool (MCP streamable HTTP)")
        }
        .answer_with(
            200,
            "The JSON-RPC answer, as an SSE stream (`text/event-stream`) or as JSON.",
            Some(json!({
                "application/json": {"schema": {"type": "object"}},
                "text/event-stream": {"schema": {"type": "string"}},
            })),
        )
        .answer_with(202, "A notification or a response: taken, nothing to answer.", None)
        .answer_with(400, "Not a JSON-RPC message, or a protocol header that does not match it.", mcp_error())
        .answer_with(406, "The `Accept` header lacks `application/json` or `text/event-stream`.", mcp_error())
        .answer_with(415, "The body is not `application/json`.", mcp_error())
        .errors(&[401, 403, 413]),
        operation(M::POST, "/hooks/{function}", "deliverWebhook", "A webhook delivery: trigger the function")
            .header("webhook-id", "Standard Webhooks: the delivery's id, its idempotency key.")
            .header("webhook-timestamp", "Standard Webhooks: when it was signed, in Unix seconds (5 minutes at most).")
            .header("webhook-signature", "Standard Webhooks: `v1,<base64 HMAC-SHA256>`, one or more, space-separated.")
            .header("X-Hub-Signature-256", "GitHub: `sha256=<hex HMAC-SHA256 of the body>`.")
            .header("X-GitHub-Delivery", "GitHub: the delivery's id, its idempotency key.")
            .header("Idempotency-Key", "With `verify = \"token\"` (`Authorization: Bearer <secret>`): the delivery's id.")
            .any_body("The sender's JSON payload; the function's input, or mapped into it by the webhook's `input`.")
            .answer(202, "The new execution, queued (`triggered_by` is `webhook:<function>`).", Some("Execution"))
            .location(202)
            .links(202, EXECUTION_LINKS)
            .answer(200, "The first execution of a repeated delivery id.", Some("Execution"))
            .location(200)
            .errors(&[401, 409, 429, 503]),
    ]
}

/// What rmcp's transport answers with an error status: a plain-text reason, or a JSON-RPC error object.
fn mcp_error() -> Option<serde_json::Value> {
    Some(json!({
        "text/plain": {"schema": {"type": "string"}},
        "application/json": {"schema": {"type": "object"}},
    }))
}
