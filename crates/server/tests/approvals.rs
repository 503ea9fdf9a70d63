//! Approvals over HTTP, on the real server with the demo backend (input `approvals: N` makes it ask N command
//! approvals in turn, `approval_kind: "question"` a question): a function with `approval_policy = "ask"` holds its
//! execution `waiting` until someone decides through the API or the pages' forms; who may decide, what a decision
//! must hold, the activity it records, and everywhere the pages show approvals and the `waiting` status.

mod common;

use std::time::{Duration, Instant};

use common::{Answer, Browser, TestServer, answer, server, server_with};
use dashboard_backend_api::Scope;
use dashboard_server::TokenSpec;
use serde_json::{Value, json};

const ADMIN: &str = "approvals-admin-token-0123456789";
const READER: &str = "approvals-reader-token-0123456789";
/// A trigger token granted another backend than the demo's.
const ELSEWHERE: &str = "approvals-elsewhere-token-0123456789";
const SETTLE: Duration = Duration::from_secs(10);
/// The command the demo asks to run first.
const FIRST_COMMAND: &str = "demo --approved-step 1";

/// A server with auth on: `root` (admin), `viewer` (read) and `ci` (trigger, on a backend that is not `demo`).
async fn guarded_server() -> TestServer {
    server_with(|config| {
        config.auth_tokens = vec![
            TokenSpec::from_secret("root", ADMIN, Scope::Admin),
            TokenSpec::from_secret("viewer", READER, Scope::Read),
            TokenSpec {
                backends: Some(vec!["elsewhere".into()]),
                ..TokenSpec::from_secret("ci", ELSEWHERE, Scope::Trigger)
            },
        ];
    })
    .await
}

/// Calls the API with an optional bearer token and JSON body.
async fn call(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let mut request = server.client.request(method, format!("{}{path}", server.url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    answer(request).await
}

async fn get(server: &TestServer, path: &str, token: Option<&str>) -> Answer {
    call(server, reqwest::Method::GET, path, token, None).await
}

async fn decide(server: &TestServer, id: &str, token: Option<&str>, body: Value) -> Answer {
    call(server, reqwest::Method::POST, &format!("/api/approvals/{id}"), token, Some(body)).await
}

/// Creates `name` on the demo backend with `approval_policy = "ask"` (and `extra` fields).
async fn create_asking(server: &TestServer, token: Option<&str>, name: &str, extra: Value) {
    let mut body = json!({"name": name, "backend": "demo", "approval_policy": "ask"});
    for (key, value) in extra.as_object().cloned().unwrap_or_default() {
        body[key] = value;
    }
    let created = call(server, reqwest::Method::POST, "/api/functions", token, Some(body)).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["approval_policy"], "ask");
}

/// Triggers `function` with `input`; the execution's id.
async fn trigger(server: &TestServer, token: Option<&str>, function: &str, input: Value) -> String {
    let body = json!({"function": function, "input": input});
    let triggered = call(server, reqwest::Method::POST, "/api/executions", token, Some(body)).await;
    assert_eq!(triggered.status, 202, "{:?}", triggered.body);
    triggered.body["id"].as_str().expect("an id").to_owned()
}

/// Polls the execution until its status is `status`.
async fn wait_for(server: &TestServer, token: Option<&str>, id: &str, status: &str) -> Value {
    common::poll_status(|path| async move { get(server, &path, token).await }, id, status, SETTLE).await
}

/// Polls the pending approvals until one of `execution` is listed, for at most `limit`; that approval.
async fn pending_of(server: &TestServer, token: Option<&str>, execution: &str, limit: Duration) -> Value {
    let started = Instant::now();
    loop {
        let list = get(server, "/api/approvals?status=pending", token).await;
        assert_eq!(list.status, 200, "{:?}", list.body);
        let found = list.body["items"]
            .as_array()
            .and_then(|items| items.iter().find(|approval| approval["execution_id"] == execution).cloned());
        if let Some(approval) = found {
            return approval;
        }
        assert!(
            started.elapsed() < limit,
            "no pending approval of {execution} within {limit:?}: {:?}",
            list.body
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The id of an approval.
fn id_of(approval: &Value) -> String {
    approval["id"].as_str().expect("an approval id").to_owned()
}

/// The kinds of the events after `cursor` about `execution`, oldest first, with the events themselves.
async fn events_of(server: &TestServer, token: Option<&str>, cursor: u64, execution: &str) -> Vec<Value> {
    let events = get(server, &format!("/api/events?after={cursor}&limit=1000"), token).await;
    assert_eq!(events.status, 200, "{:?}", events.body);
    events.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|event| event["execution_id"] == execution)
        .cloned()
        .collect()
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().filter_map(|event| event["kind"].as_str()).collect()
}

/// The header's count of pending approvals on a page, or `None` when it is hidden.
fn header_count(html: &str) -> Option<u64> {
    let start = html.find("data-fragment=\"approvals-count\"").expect("the header's count");
    let tag = &html[start..];
    let end = tag.find("</span>").expect("the count's end");
    let (attributes, text) = tag[..end].split_once('>').expect("a tag");
    if attributes.contains("hidden") { None } else { text.trim().parse().ok() }
}

#[tokio::test]
async fn an_approval_holds_its_execution_waiting_until_approved_then_it_succeeds() {
    let server = guarded_server().await;
    let admin = Some(ADMIN);
    create_asking(&server, admin, "careful", json!({})).await;
    let cursor = {
        let events = get(&server, "/api/events?limit=1000", admin).await;
        events.body["next_after"].as_u64().expect("a cursor")
    };

    let id = trigger(&server, admin, "careful", json!({"steps": 0, "approvals": 1})).await;
    let approval = pending_of(&server, admin, &id, Duration::from_secs(1)).await;
    assert_eq!(
        (
            &approval["status"],
            &approval["kind"],
            &approval["summary"],
            &approval["function"],
            &approval["backend"]
        ),
        (&json!("pending"), &json!("command"), &json!(FIRST_COMMAND), &json!("careful"), &json!("demo"))
    );
    assert_eq!(approval["details"]["command"], FIRST_COMMAND);
    assert_eq!(approval["decided_by"], Value::Null);
    let approval_id = id_of(&approval);
    let execution = wait_for(&server, admin, &id, "waiting").await;
    assert_eq!(execution["finished_at"], Value::Null);
    let one = get(&server, &format!("/api/approvals/{approval_id}"), admin).await;
    assert_eq!((one.status, &one.body), (200, &approval));
    let of_execution = get(&server, &format!("/api/approvals?status=all&execution={id}"), admin).await;
    assert_eq!(of_execution.body["items"], json!([approval]));
    // Its transcript item says the approval waits.
    let items = get(&server, &format!("/api/executions/{id}/items"), admin).await;
    let item = items.body["items"]
        .as_array()
        .and_then(|items| items.iter().find(|item| item["kind"] == "approval").cloned())
        .expect("an approval item");
    assert_eq!((&item["approval_id"], &item["status"]), (&json!(approval_id), &json!("in_progress")));

    // The inbox shows it with its buttons, and the header counts it.
    let inbox = get(&server, "/approvals", admin).await;
    assert_eq!(inbox.status, 200);
    let html = inbox.text();
    for expected in [
        &format!("data-approval-id=\"{approval_id}\""),
        &format!("action=\"/approvals/{approval_id}\""),
        "<pre class=\"item-output approval-command\">demo --approved-step 1</pre>",
        "name=\"decision\" value=\"approve\"",
        "name=\"decision\" value=\"approve_for_session\"",
        "name=\"decision\" value=\"decline\"",
        "the demo agent wants to run a command",
        &format!("href=\"/executions/{id}\""),
    ] {
        assert!(html.contains(expected), "the inbox lacks {expected:?}");
    }
    assert_eq!(header_count(html), Some(1));

    let approved =
        decide(&server, &approval_id, admin, json!({"decision": "approve", "note": "go ahead"})).await;
    assert_eq!(approved.status, 200, "{:?}", approved.body);
    assert_eq!(
        (
            &approved.body["status"],
            &approved.body["decided_by"],
            &approved.body["note"],
            &approved.body["for_session"]
        ),
        (&json!("approved"), &json!("root"), &json!("go ahead"), &json!(false))
    );
    assert!(approved.body["decided_at"].is_string());
    let finished = wait_for(&server, admin, &id, "succeeded").await;
    assert_eq!(finished["output"]["decisions"], json!(["approve"]));

    let events = events_of(&server, admin, cursor, &id).await;
    let seen = kinds(&events);
    let position = |kind: &str| {
        seen.iter().position(|seen| *seen == kind).unwrap_or_else(|| panic!("no {kind} in {seen:?}"))
    };
    assert!(position("approval.requested") < position("approval.decided"), "{seen:?}");
    assert!(position("execution.waiting") < position("execution.resumed"), "{seen:?}");
    assert!(position("approval.decided") < position("execution.resumed"), "{seen:?}");
    assert!(position("execution.resumed") < position("execution.succeeded"), "{seen:?}");
    let decided = &events[position("approval.decided")];
    assert_eq!(
        (&decided["data"]["decided_by"], &decided["data"]["status"]),
        (&json!("root"), &json!("approved"))
    );
    assert_eq!(decided["data"]["approval_id"], approval_id);

    // Too late: it is decided.
    let again = decide(&server, &approval_id, admin, json!({"decision": "decline"})).await;
    assert_eq!((again.status, again.code()), (409, "approval-decided"), "{:?}", again.body);
    assert_eq!(again.body["error"]["details"]["status"], "approved");
    assert_eq!(get(&server, "/api/approvals", admin).await.body["items"], json!([]), "nothing pending");
    assert_eq!(header_count(get(&server, "/approvals", admin).await.text()), None);
    let items = get(&server, &format!("/api/executions/{id}/items"), admin).await;
    let item = items.body["items"]
        .as_array()
        .and_then(|items| items.iter().find(|item| item["kind"] == "approval").cloned());
    assert_eq!(item.map(|item| item["status"].clone()), Some(json!("completed")));
    server.stop().await;
}

#[tokio::test]
async fn only_callers_with_trigger_on_the_backend_may_decide_and_bad_bodies_are_named() {
    let server = guarded_server().await;
    let admin = Some(ADMIN);
    create_asking(&server, admin, "careful", json!({})).await;
    let id = trigger(&server, admin, "careful", json!({"steps": 0, "approvals": 1})).await;
    let approval_id = id_of(&pending_of(&server, admin, &id, SETTLE).await);
    let approve = json!({"decision": "approve"});

    // Reading needs `read`; a reader may not decide, nor may a token limited to other backends.
    assert_eq!(get(&server, "/api/approvals", Some(READER)).await.status, 200);
    assert_eq!(get(&server, "/api/approvals", None).await.status, 401);
    let by_reader = decide(&server, &approval_id, Some(READER), approve.clone()).await;
    assert_eq!((by_reader.status, by_reader.code()), (403, "forbidden"), "{:?}", by_reader.body);
    let elsewhere = decide(&server, &approval_id, Some(ELSEWHERE), approve.clone()).await;
    assert_eq!((elsewhere.status, elsewhere.code()), (403, "forbidden"), "{:?}", elsewhere.body);
    assert_eq!(elsewhere.body["error"]["details"]["backend"], "demo");
    assert_eq!(decide(&server, &approval_id, None, approve.clone()).await.status, 401);

    // Bodies of the wrong shape, each refused naming its field.
    let long_note = "n".repeat(2001);
    for (body, status, code, field) in [
        (json!({"decision": "maybe"}), 422, "invalid-field", "decision"),
        (json!({"decision": 1}), 422, "invalid-field", "decision"),
        (json!({}), 422, "missing-field", "decision"),
        (json!({"decision": "approve", "colour": "red"}), 422, "unknown-field", "colour"),
        (json!({"decision": "approve", "answers": {"q": ["a"]}}), 422, "invalid-field", "answers"),
        (json!({"decision": "approve", "note": long_note}), 422, "invalid-field", "note"),
    ] {
        let refused = decide(&server, &approval_id, admin, body.clone()).await;
        assert_eq!(
            (refused.status, refused.code(), refused.body["error"]["details"]["field"].as_str()),
            (status, code, Some(field)),
            "{body}: {:?}",
            refused.body
        );
    }
    let not_json = server.send(
        server
            .client
            .post(format!("{}/api/approvals/{approval_id}", server.url))
            .bearer_auth(ADMIN)
            .header("Content-Type", "text/plain")
            .body("approve"),
    );
    assert_eq!(not_json.await.status, 415);

    // Unknown approvals and bad parameters.
    let unknown = "0190b0c4-0000-7000-8000-000000000000";
    for path in [format!("/api/approvals/{unknown}"), "/api/approvals/not-an-id".to_owned()] {
        let missing = get(&server, &path, admin).await;
        assert_eq!((missing.status, missing.code()), (404, "not-found"), "{path}: {:?}", missing.body);
        assert_eq!(missing.body["error"]["details"]["entity"], "approval");
    }
    let missing = decide(&server, unknown, admin, approve.clone()).await;
    assert_eq!((missing.status, missing.code()), (404, "not-found"));
    for (query, parameter) in [
        ("status=decided", "status"),
        ("execution=nope", "execution"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=many", "limit"),
    ] {
        let refused = get(&server, &format!("/api/approvals?{query}"), admin).await;
        assert_eq!(
            (refused.status, refused.code(), refused.body["error"]["details"]["parameter"].as_str()),
            (400, "invalid-query", Some(parameter)),
            "{query}: {:?}",
            refused.body
        );
    }

    // None of that decided anything: it is still pending, and a decline lets the agent go on, told no.
    assert_eq!(get(&server, &format!("/api/approvals/{approval_id}"), admin).await.body["status"], "pending");
    let declined =
        decide(&server, &approval_id, admin, json!({"decision": "decline", "note": "not now"})).await;
    assert_eq!((declined.status, &declined.body["status"]), (200, &json!("declined")), "{:?}", declined.body);
    let finished = wait_for(&server, admin, &id, "succeeded").await;
    assert_eq!(finished["output"]["decisions"], json!(["decline"]));
    let log = get(&server, &format!("/api/executions/{id}/logs?format=text"), admin).await;
    assert!(log.text().contains("approval 1: decline by root (not now)"), "{}", log.text());
    server.stop().await;
}

#[tokio::test]
async fn a_question_is_approved_with_its_answers() {
    let server = server().await;
    create_asking(&server, None, "curious", json!({})).await;
    let id =
        trigger(&server, None, "curious", json!({"steps": 0, "approvals": 1, "approval_kind": "question"}))
            .await;
    let approval = pending_of(&server, None, &id, SETTLE).await;
    assert_eq!(approval["kind"], "question");
    let approval_id = id_of(&approval);
    let question = &approval["details"]["questions"][0];
    let question_id = question["id"].as_str().expect("a question id").to_owned();

    let without = decide(&server, &approval_id, None, json!({"decision": "approve"})).await;
    assert_eq!((without.status, without.body["error"]["details"]["field"].as_str()), (422, Some("answers")));
    let malformed =
        decide(&server, &approval_id, None, json!({"decision": "approve", "answers": {"x": "blue"}})).await;
    assert_eq!(
        (malformed.status, malformed.body["error"]["details"]["field"].as_str()),
        (422, Some("answers"))
    );

    // The inbox offers the options as radio buttons.
    let inbox = server.get("/approvals").await;
    let field = format!("name=\"answer.{question_id}\"");
    assert!(
        inbox.text().contains(&format!("<input type=\"radio\" {field} value=\"blue\" required>")),
        "{}",
        inbox.text()
    );
    assert!(
        !inbox.text().contains("value=\"approve_for_session\""),
        "a question is not granted for a session"
    );

    let answers = json!({question_id.clone(): ["blue"]});
    let approved =
        decide(&server, &approval_id, None, json!({"decision": "approve", "answers": answers})).await;
    assert_eq!(approved.status, 200, "{:?}", approved.body);
    assert_eq!((&approved.body["answers"], &approved.body["decided_by"]), (&answers, &json!("anonymous")));
    wait_for(&server, None, &id, "succeeded").await;
    let log = server.get(&format!("/api/executions/{id}/logs?format=text")).await;
    assert!(log.text().contains("blue"), "the agent got the answer: {}", log.text());
    server.stop().await;
}

#[tokio::test]
async fn the_pages_forms_decide_without_javascript_and_redirect_back() {
    let server = server().await;
    create_asking(&server, None, "careful", json!({})).await;
    let mut browser = Browser::open(&server.url, None).await;
    let first = trigger(&server, None, "careful", json!({"steps": 0, "approvals": 1})).await;
    let second = trigger(&server, None, "careful", json!({"steps": 0, "approvals": 1})).await;
    let first_approval = id_of(&pending_of(&server, None, &first, SETTLE).await);
    let second_approval = id_of(&pending_of(&server, None, &second, SETTLE).await);
    wait_for(&server, None, &first, "waiting").await;

    // The header counts both on every page.
    for path in ["/", "/executions", "/functions", "/activity", "/backends", "/approvals"] {
        assert_eq!(header_count(browser.get(path).await.text()), Some(2), "{path}");
    }
    // The status page shows the same card and buttons where the approval's item is.
    let status_page = browser.get(&format!("/executions/{first}")).await;
    let html = status_page.text();
    assert!(html.contains(&format!("id=\"approval-{first_approval}\"")), "the card on the status page");
    assert!(html.contains("<input type=\"hidden\" name=\"from\" value=\"execution\">"));
    assert!(html.contains("<span class=\"item-outcome outcome-waiting\">waiting</span>"));
    assert!(html.contains("waiting for approval"), "the timeline says it waits");

    // From the inbox: approve, back to the inbox with a notice.
    let posted = browser
        .post_form(
            &format!("/approvals/{first_approval}"),
            &[("decision", "approve"), ("from", "inbox"), ("note", "")],
        )
        .await;
    assert_eq!(posted.status, 303, "{:?}", posted.body);
    assert_eq!(posted.location(), format!("/approvals?decided={first_approval}"));
    let inbox = browser.get(posted.location()).await;
    assert!(inbox.text().contains("Approved: demo --approved-step 1 (by anonymous)."), "the notice");
    wait_for(&server, None, &first, "succeeded").await;
    assert_eq!(header_count(inbox.text()), Some(1));

    // Deciding it again from the page: the inbox again, saying why, with the conflict's status.
    let again = browser
        .post_form(&format!("/approvals/{first_approval}"), &[("decision", "decline"), ("from", "inbox")])
        .await;
    assert_eq!(again.status, 409);
    assert!(again.text().contains("role=\"alert\""), "the error is shown");
    assert!(again.text().contains("it can no longer be decided"), "{}", again.text());
    // Nor without the form's CSRF token, nor with an unknown decision.
    let forged = browser
        .post_form_as_is(
            &format!("/approvals/{second_approval}"),
            &[("decision", "approve"), ("from", "inbox")],
        )
        .await;
    assert_eq!(forged.status, 403);
    let unknown = browser
        .post_form(&format!("/approvals/{second_approval}"), &[("decision", "maybe"), ("from", "execution")])
        .await;
    assert_eq!(unknown.status, 422);
    assert!(unknown.text().contains("press Approve"), "{}", unknown.text());

    // From the status page: decline for the second, back to its status page at the card.
    let posted = browser
        .post_form(
            &format!("/approvals/{second_approval}"),
            &[("decision", "decline"), ("from", "execution"), ("note", "not this one")],
        )
        .await;
    assert_eq!(posted.status, 303, "{:?}", posted.body);
    assert_eq!(
        posted.location(),
        format!("/executions/{second}?decided={second_approval}#approval-{second_approval}")
    );
    wait_for(&server, None, &second, "succeeded").await;
    let page = browser.get(&format!("/executions/{second}?decided={second_approval}")).await;
    assert!(page.text().contains("Declined: demo --approved-step 1 (by anonymous)."), "the notice");
    assert!(page.text().contains("not this one"), "the note");
    assert!(
        !page.text().contains(&format!("action=\"/approvals/{second_approval}\"")),
        "no buttons once decided"
    );
    assert_eq!(header_count(page.text()), None);
    let unknown_page = browser
        .post_form("/approvals/0190b0c4-0000-7000-8000-000000000000", &[("decision", "approve")])
        .await;
    assert_eq!(unknown_page.status, 404);
    server.stop().await;
}

#[tokio::test]
async fn a_signed_in_reader_sees_approvals_without_buttons_and_may_not_post_them() {
    let server = guarded_server().await;
    create_asking(&server, Some(ADMIN), "careful", json!({})).await;
    let id = trigger(&server, Some(ADMIN), "careful", json!({"steps": 0, "approvals": 1})).await;
    let approval_id = id_of(&pending_of(&server, Some(ADMIN), &id, SETTLE).await);
    let mut reader = Browser::open(&server.url, Some(READER)).await;
    let inbox = reader.get("/approvals").await;
    assert_eq!(inbox.status, 200);
    assert!(
        inbox.text().contains(FIRST_COMMAND) && !inbox.text().contains("value=\"approve\""),
        "no buttons"
    );
    let refused = reader.post_form(&format!("/approvals/{approval_id}"), &[("decision", "approve")]).await;
    assert_eq!(refused.status, 403);
    assert!(refused.text().contains("Not allowed"), "a readable refusal");

    let mut admin = Browser::open(&server.url, Some(ADMIN)).await;
    let posted =
        admin.post_form(&format!("/approvals/{approval_id}"), &[("decision", "approve_for_session")]).await;
    assert_eq!(posted.status, 303, "{:?}", posted.body);
    let approval = get(&server, &format!("/api/approvals/{approval_id}"), Some(ADMIN)).await;
    assert_eq!((&approval.body["decided_by"], &approval.body["for_session"]), (&json!("root"), &json!(true)));
    server.stop().await;
}

#[tokio::test]
async fn an_approval_nobody_decides_expires_and_a_cancel_expires_the_rest() {
    let server = server().await;
    create_asking(&server, None, "hasty", json!({"approval_timeout_secs": 1})).await;
    let id = trigger(&server, None, "hasty", json!({"steps": 0, "approvals": 1})).await;
    let approval_id = id_of(&pending_of(&server, None, &id, SETTLE).await);
    let finished = wait_for(&server, None, &id, "succeeded").await;
    assert_eq!(finished["output"]["decisions"], json!(["decline"]), "an expiry is a no");
    let expired = server.get(&format!("/api/approvals/{approval_id}")).await;
    assert_eq!(
        (&expired.body["status"], &expired.body["decided_by"]),
        (&json!("expired"), &json!("dashboard"))
    );

    create_asking(&server, None, "patient", json!({})).await;
    let id = trigger(&server, None, "patient", json!({"steps": 0, "approvals": 1})).await;
    let approval_id = id_of(&pending_of(&server, None, &id, SETTLE).await);
    wait_for(&server, None, &id, "waiting").await;
    let cancelled = server.post(&format!("/api/executions/{id}/cancel"), json!({})).await;
    assert_eq!(cancelled.status, 202, "{:?}", cancelled.body);
    wait_for(&server, None, &id, "cancelled").await;
    let started = Instant::now();
    loop {
        let approval = server.get(&format!("/api/approvals/{approval_id}")).await;
        if approval.body["status"] == "expired" {
            break;
        }
        assert!(started.elapsed() < SETTLE, "not expired after the cancel: {:?}", approval.body);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let late = server.post(&format!("/api/approvals/{approval_id}"), json!({"decision": "approve"})).await;
    assert_eq!((late.status, late.code()), (409, "approval-decided"));
    assert_eq!(late.body["error"]["details"]["status"], "expired");
    server.stop().await;
}

#[tokio::test]
async fn a_waiting_execution_is_shown_wherever_statuses_are() {
    let server = server().await;
    create_asking(&server, None, "careful", json!({})).await;
    let id = trigger(&server, None, "careful", json!({"steps": 0, "approvals": 1})).await;
    pending_of(&server, None, &id, SETTLE).await;
    wait_for(&server, None, &id, "waiting").await;

    let listed = server.get("/api/executions?status=waiting").await;
    assert_eq!(listed.body["items"][0]["id"], id.as_str(), "{:?}", listed.body);
    let page = server.get("/executions?status=waiting").await;
    assert!(
        page.text().contains("<option value=\"waiting\" selected>waiting</option>"),
        "the filter offers it"
    );
    assert!(page.text().contains(&format!("href=\"/executions/{id}\"")), "and lists it");
    assert!(page.text().contains("badge status-waiting"));
    let overview = server.get("/").await;
    assert!(overview.text().contains("count count-waiting"), "the overview counts it");
    let activity = server.get("/activity").await;
    assert!(activity.text().contains("<span class=\"badge status-waiting\">approval.requested</span>"));
    assert!(activity.text().contains("<span class=\"badge status-waiting\">execution.waiting</span>"));
    let metrics = server.get("/metrics").await;
    assert!(metrics.text().contains("dashboard_executions{status=\"waiting\"} 1"), "{}", metrics.text());
    assert!(metrics.text().contains("dashboard_approvals_pending 1"), "{}", metrics.text());
    server.post(&format!("/api/executions/{id}/cancel"), json!({})).await;
    wait_for(&server, None, &id, "cancelled").await;
    server.stop().await;
}

#[tokio::test]
async fn the_function_form_sets_the_approval_policy() {
    let server = server().await;
    let mut browser = Browser::open(&server.url, None).await;
    let form = browser.get("/functions/new").await;
    assert!(form.text().contains("<select id=\"f-approval-policy\" name=\"approval_policy\">"));
    let fields = [
        ("name", "asks-first"),
        ("backend", "demo"),
        ("input_schema", ""),
        ("approval_policy", "ask"),
        ("approval_timeout_secs", "600"),
    ];
    let created = browser.post_form("/functions", &fields).await;
    assert_eq!(created.status, 303, "{}", created.text());
    let function = server.get("/api/functions/asks-first").await;
    assert_eq!(
        (&function.body["approval_policy"], &function.body["approval_timeout_secs"]),
        (&json!("ask"), &json!(600))
    );
    let page = browser.get("/functions/asks-first").await;
    assert!(page.text().contains("<dt>Approvals</dt><dd>ask"), "the function page says so");
    let edit = browser.get("/functions/asks-first/edit").await;
    assert!(edit.text().contains("<option value=\"ask\" selected>"), "the edit form keeps it");

    let bad = [("name", "asks-never"), ("backend", "demo"), ("approval_policy", "sometimes")];
    let refused = browser.post_form("/functions", &bad).await;
    assert_eq!(refused.status, 422);
    assert!(
        refused.text().contains("approval_policy: &quot;sometimes&quot; is not auto, ask or deny"),
        "{}",
        refused.text()
    );
    let bad = [("name", "asks-never"), ("backend", "demo"), ("approval_timeout_secs", "0")];
    let refused = browser.post_form("/functions", &bad).await;
    assert_eq!(refused.status, 422);
    assert!(refused.text().contains("approval_timeout_secs: must be at least 1"), "{}", refused.text());
    server.stop().await;
}
