//! Notifications read on their own: deltas, the plan, usage names and unknown methods.

use serde_json::json;

use super::*;

#[test]
fn agent_message_deltas_grow_the_item_they_belong_to() {
    let mut transcript = Transcript::default();
    let started = json!({"item": {"id": "m", "type": "agentMessage", "text": ""}});
    assert_eq!(transcript.notification("item/started", &started).len(), 1);
    // Reported at most every DELTA_REPORT_INTERVAL; the text grows either way.
    transcript.notification("item/agentMessage/delta", &json!({"itemId": "m", "delta": "Hel"}));
    std::thread::sleep(DELTA_REPORT_INTERVAL);
    let effects = transcript.notification("item/agentMessage/delta", &json!({"itemId": "m", "delta": "lo"}));
    let [Effect::Item(item)] = effects.as_slice() else { panic!("{effects:?}") };
    assert_eq!(item.body, ItemBody::Message { role: MessageRole::Agent, text: "Hello".into() });
    // A delta of an item never started is passed over.
    assert_eq!(transcript.notification("item/agentMessage/delta", &json!({"itemId": "x", "delta": "?"})), []);
}

#[test]
fn the_plan_is_one_item_per_turn() {
    let params = json!({"turnId": "t1", "plan": [{"step": "read", "status": "completed"},
                                                  {"step": "fix", "status": "inProgress"}]});
    let effects = Transcript::default().notification("turn/plan/updated", &params);
    assert_eq!(effects[0], Effect::Log(LogStream::Agent, "plan (1/2 done):".into()));
    let Some(Effect::Item(item)) = effects.last() else { panic!("{effects:?}") };
    assert_eq!((item.id.as_str(), item.status), ("plan-t1", ItemStatus::InProgress));
}

#[test]
fn usage_totals_keep_the_exec_mode_names() {
    let params = json!({"threadId": "t", "turnId": "u",
                        "tokenUsage": {"total": {"inputTokens": 3, "cacheWriteInputTokens": 1},
                                       "last": {"inputTokens": 2}}});
    assert_eq!(
        Transcript::default().notification("thread/tokenUsage/updated", &params),
        [Effect::Usage(ThreadUsage {
            total: json!({"input_tokens": 3, "cache_write_input_tokens": 1}),
            last: Some(json!({"input_tokens": 2})),
            turn_id: Some("u".into()),
        })]
    );
}

#[test]
fn unknown_notifications_and_items_have_no_effect() {
    let mut transcript = Transcript::default();
    assert_eq!(transcript.notification("thread/realtime/started", &json!({"x": 1})), []);
    assert_eq!(
        transcript.notification("item/completed", &json!({"item": {"id": "i", "type": "hologram"}})),
        []
    );
    assert_eq!(
        transcript.notification("item/started", &json!({"item": {"id": "u", "type": "userMessage"}})),
        []
    );
}
