//! `MemoryStore`: the whole store in one mutex-guarded struct, for tests, demos and embedding without a disk.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use dashboard_core::{
    Approval, ApprovalDecision, ApprovalId, ApprovalKind, ApprovalStatus, CoreError, Delivery, DeliveryId,
    DeliveryStatus, Event, EventKind, Execution, ExecutionId, ExecutionStatus, Function, FunctionId,
    FunctionSpec, Item, LogLine, NewEvent, NewItem, NewLogLine, Schedule, ScheduleId, Timestamp, now,
};

use crate::{
    ApprovalChange, ApprovalQuery, DailySpend, DashboardStore, DeliveryOutcome, DeliveryQuery, ExecutionPage,
    ExecutionQuery, ExecutionUpdate, FinishedDelivery, FireAction, FiredSchedule, FunctionKey, LoggedUpdate,
    NewExecution, OutboxRule, Recorded, ScheduleFire, Spend, SpendQuery, StatusCounts, StoreError,
    check_transition, deliveries_for, merge_items_by_id, usage_spend,
};

/// A [`DashboardStore`] that keeps everything in memory: shared between tasks, and gone when the process ends.
///
/// One mutex guards all the state, so each method is one atomic step: a change and its event are made under the
/// same lock, and no reader ever sees one without the other. The lock is never held across an `.await` (no method
/// awaits anything), so contention costs microseconds.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    functions: HashMap<FunctionId, Function>,
    /// Name → id; a `BTreeMap` so that listing by name needs no sort.
    function_ids_by_name: BTreeMap<String, FunctionId>,
    /// Ids are UUID v7, so id order is creation order: newest first is a reverse walk.
    executions: BTreeMap<ExecutionId, Execution>,
    execution_ids_by_key: HashMap<String, ExecutionId>,
    /// Each execution's lines, in seq order; the line with seq `n` is at index `n - 1`.
    logs: HashMap<ExecutionId, Vec<LogLine>>,
    /// Each execution's transcript items.
    items: HashMap<ExecutionId, ExecutionItems>,
    /// Each execution's diff, when it has one.
    diffs: HashMap<ExecutionId, String>,
    /// Ids are UUID v7: id order is request order.
    approvals: BTreeMap<ApprovalId, Approval>,
    /// In id order.
    events: Vec<Event>,
    /// The last event id handed out. Kept apart from `events` so that pruning never lets an id be reused.
    last_event_id: u64,
    /// Ids are UUID v7 (or v8 for those of the config file): listed in id order.
    schedules: BTreeMap<ScheduleId, Schedule>,
    /// Which recorded events go to the outbox.
    outbox_rules: Vec<OutboxRule>,
    /// The outbox. Ids are UUID v7: id order is the order they were written in.
    deliveries: BTreeMap<DeliveryId, OutboxEntry>,
}

/// A delivery in the outbox with the claim on it, which the [`Delivery`] itself does not show.
#[derive(Debug)]
struct OutboxEntry {
    delivery: Delivery,
    lease: Option<DeliveryLease>,
}

/// Who claimed a delivery, and until when.
#[derive(Debug)]
struct DeliveryLease {
    owner: String,
    expires_at: Timestamp,
}

impl OutboxEntry {
    /// Whether a claim made at `at` may take it: pending, due, and not held by a live lease.
    fn is_claimable(&self, at: Timestamp) -> bool {
        self.delivery.status == DeliveryStatus::Pending
            && self.delivery.next_attempt_at.is_some_and(|due| due <= at)
            && self.lease.as_ref().is_none_or(|lease| lease.expires_at <= at)
    }

    /// Whether `owner` holds the claim, live or ended, that nobody took over since.
    fn is_held_by(&self, owner: &str) -> bool {
        self.delivery.status == DeliveryStatus::Pending
            && self.lease.as_ref().is_some_and(|lease| lease.owner == owner)
    }
}

/// The items of one execution: in seq order, the item with seq `n` at index `n - 1`, and found by id.
#[derive(Debug, Default)]
struct ExecutionItems {
    in_order: Vec<Item>,
    index_by_id: HashMap<String, usize>,
}

impl ExecutionItems {
    /// Inserts or updates each item (ids already merged), all at the time `at`; the items as stored.
    fn upsert(&mut self, items: Vec<NewItem>, at: Timestamp) -> Vec<Item> {
        items
            .into_iter()
            .map(|NewItem { id, status, body }| {
                if let Some(&index) = self.index_by_id.get(&id) {
                    let stored = &mut self.in_order[index];
                    stored.status = status;
                    stored.body = body;
                    stored.updated_at = at;
                    return stored.clone();
                }
                let seq = self.in_order.len() as u64 + 1;
                self.index_by_id.insert(id.clone(), self.in_order.len());
                let item = Item { id, seq, status, ts: at, updated_at: at, body };
                self.in_order.push(item.clone());
                item
            })
            .collect()
    }
}

impl State {
    /// Records `event` with the next id, and writes the outbox deliveries the rules call for; the caller holds the lock
    /// that also covers the change it describes. Every event goes through here, so none escapes the outbox.
    fn record(&mut self, event: NewEvent) -> Event {
        self.last_event_id += 1;
        let event = event.recorded(self.last_event_id, now());
        self.events.push(event.clone());
        if !self.outbox_rules.is_empty() {
            for delivery in deliveries_for(&self.outbox_rules, std::slice::from_ref(&event), event.ts) {
                self.deliveries.insert(delivery.id, OutboxEntry { delivery, lease: None });
            }
        }
        event
    }

    /// The checks and the write of `create_execution`; checks everything before it changes anything.
    fn create_execution(&mut self, execution: NewExecution) -> Result<Recorded<Execution>, StoreError> {
        if let Some(key) = &execution.idempotency_key
            && let Some(existing) = self.execution_ids_by_key.get(key).and_then(|id| self.executions.get(id))
        {
            return Err(StoreError::IdempotencyKeyExists { existing: Box::new(existing.clone()) });
        }
        if self.executions.contains_key(&execution.id) {
            let message = format!("an execution with id {} exists already", execution.id);
            return Err(CoreError::invalid_field("id", message).into());
        }
        let execution = execution.into_execution(now());
        if let Some(key) = &execution.idempotency_key {
            self.execution_ids_by_key.insert(key.clone(), execution.id);
        }
        self.executions.insert(execution.id, execution.clone());
        let event = self.record(NewEvent::for_execution(&execution));
        Ok(Recorded { value: execution, event })
    }

    /// The fire of a schedule the caller found enabled and due at `due`: the execution or the skip, the next due time,
    /// and the events.
    fn fire(&mut self, mut schedule: Schedule, fire: ScheduleFire) -> Result<FiredSchedule, StoreError> {
        schedule.next_run_at = fire.next;
        match fire.action {
            FireAction::Run(new) => {
                // Created first: when it is refused, the schedule has not been touched.
                let queued = self.create_execution(new)?;
                let execution = queued.value;
                schedule.last_run_at = Some(execution.created_at);
                schedule.last_execution = Some(execution.id);
                self.schedules.insert(schedule.id, schedule.clone());
                let fired = self.record(NewEvent::schedule_fired(&schedule, &execution, fire.due));
                Ok(FiredSchedule { schedule, execution: Some(execution), events: vec![queued.event, fired] })
            }
            FireAction::Skip { reason } => {
                schedule.skipped += 1;
                self.schedules.insert(schedule.id, schedule.clone());
                let skipped = self.record(NewEvent::schedule_skipped(&schedule, fire.due, &reason));
                Ok(FiredSchedule { schedule, execution: None, events: vec![skipped] })
            }
        }
    }

    /// The status compare-and-set of `update_execution`; checks everything before it changes anything.
    fn update_execution(
        &mut self,
        id: ExecutionId,
        update: ExecutionUpdate,
    ) -> Result<Recorded<Execution>, StoreError> {
        let execution = self.executions.get_mut(&id).ok_or_else(|| StoreError::execution_not_found(id))?;
        if execution.status != update.from {
            return Err(StoreError::StatusMismatch { expected: update.from, actual: execution.status });
        }
        check_transition(update.from, update.to)?;
        let update_from = update.from;
        let diff = update.diff.clone();
        update.apply_to(execution);
        if let Some(diff) = diff {
            self.diffs.insert(id, diff);
        }
        let execution = self.executions.get(&id).expect("the execution was found above");
        let execution = execution.clone();
        let event = self.record(NewEvent::for_change(update_from, &execution));
        Ok(Recorded { value: execution, event })
    }

    /// Appends lines to the log of an execution the caller has found; the seq of the last stored line.
    fn append_logs(&mut self, id: ExecutionId, lines: Vec<NewLogLine>) -> u64 {
        let stored = self.logs.entry(id).or_default();
        let ts = now();
        for NewLogLine { stream, message } in lines {
            let seq = stored.len() as u64 + 1;
            stored.push(LogLine { seq, ts, stream, message });
        }
        stored.len() as u64
    }

    /// Upserts items of an execution the caller has found; the items as stored.
    fn upsert_items(&mut self, id: ExecutionId, items: Vec<NewItem>) -> Vec<Item> {
        if items.is_empty() {
            return Vec::new();
        }
        self.items.entry(id).or_default().upsert(merge_items_by_id(items), now())
    }

    fn function_by_key(&self, key: &FunctionKey) -> Option<&Function> {
        let id = match key {
            FunctionKey::Id(id) => id,
            FunctionKey::Name(name) => self.function_ids_by_name.get(name)?,
        };
        self.functions.get(id)
    }
}

impl MemoryStore {
    fn state(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        // A panic while the lock was held may have left a change half made; refuse to serve such state.
        self.state.lock().map_err(|_| StoreError::Unavailable {
            message: "the memory store was poisoned by a panic during an earlier change".to_owned(),
            source: None,
        })
    }
}

/// The longest lease kept: a longer one is as good as forever, and capping it keeps the end time representable.
const MAX_LEASE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Whether `execution` passes every filter of `query`; `needle` is the lowercased text filter.
fn passes_filters(query: &ExecutionQuery, needle: Option<&str>, execution: &Execution) -> bool {
    query.status.is_none_or(|status| execution.status == status)
        && query.function.as_ref().is_none_or(|function| &execution.function == function)
        && query.backend.as_ref().is_none_or(|backend| &execution.backend == backend)
        && query
            .session_id
            .as_ref()
            .is_none_or(|session_id| execution.session_id.as_ref() == Some(session_id))
        && needle.is_none_or(|needle| execution.input.to_string().to_ascii_lowercase().contains(needle))
}

#[async_trait]
impl DashboardStore for MemoryStore {
    async fn create_function(&self, function: Function) -> Result<Recorded<Function>, StoreError> {
        let mut state = self.state()?;
        if state.function_ids_by_name.contains_key(&function.name) {
            return Err(StoreError::DuplicateName { name: function.name });
        }
        if state.functions.contains_key(&function.id) {
            return Err(CoreError::invalid_field(
                "id",
                format!("a function with id {} exists already", function.id),
            )
            .into());
        }
        state.function_ids_by_name.insert(function.name.clone(), function.id);
        state.functions.insert(function.id, function.clone());
        let event = state.record(NewEvent::for_function(EventKind::FunctionCreated, &function));
        Ok(Recorded { value: function, event })
    }

    async fn get_function(&self, key: &FunctionKey) -> Result<Option<Function>, StoreError> {
        Ok(self.state()?.function_by_key(key).cloned())
    }

    async fn list_functions(&self) -> Result<Vec<Function>, StoreError> {
        let state = self.state()?;
        Ok(state.function_ids_by_name.values().filter_map(|id| state.functions.get(id)).cloned().collect())
    }

    async fn update_function(
        &self,
        id: FunctionId,
        spec: FunctionSpec,
        expected_version: Option<u32>,
    ) -> Result<Recorded<Function>, StoreError> {
        let mut state = self.state()?;
        let current = state.functions.get(&id).ok_or_else(|| StoreError::function_not_found(id))?;
        if let Some(expected) = expected_version
            && expected != current.version
        {
            return Err(StoreError::VersionMismatch { expected, actual: current.version });
        }
        let next = current.replaced_by(spec)?;
        let old_name = current.name.clone();
        if next.name != old_name && state.function_ids_by_name.contains_key(&next.name) {
            return Err(StoreError::DuplicateName { name: next.name });
        }
        state.function_ids_by_name.remove(&old_name);
        state.function_ids_by_name.insert(next.name.clone(), id);
        state.functions.insert(id, next.clone());
        let event = state.record(NewEvent::for_function(EventKind::FunctionUpdated, &next));
        Ok(Recorded { value: next, event })
    }

    async fn delete_function(&self, id: FunctionId) -> Result<Recorded<Function>, StoreError> {
        let mut state = self.state()?;
        let function = state.functions.remove(&id).ok_or_else(|| StoreError::function_not_found(id))?;
        state.function_ids_by_name.remove(&function.name);
        let event = state.record(NewEvent::for_function(EventKind::FunctionDeleted, &function));
        Ok(Recorded { value: function, event })
    }

    async fn create_execution(&self, execution: NewExecution) -> Result<Recorded<Execution>, StoreError> {
        self.state()?.create_execution(execution)
    }

    async fn get_execution(&self, id: ExecutionId) -> Result<Option<Execution>, StoreError> {
        Ok(self.state()?.executions.get(&id).cloned())
    }

    async fn list_executions(&self, query: &ExecutionQuery) -> Result<ExecutionPage, StoreError> {
        let state = self.state()?;
        let limit = query.limit.max(1);
        let needle = query.text.as_deref().map(str::to_ascii_lowercase);
        let upper = query.before.map_or(Bound::Unbounded, Bound::Excluded);
        let mut matching = state
            .executions
            .range((Bound::Unbounded, upper))
            .rev()
            .map(|(_, execution)| execution)
            .filter(|execution| passes_filters(query, needle.as_deref(), execution));
        let items: Vec<Execution> = matching.by_ref().take(limit).cloned().collect();
        let next_cursor =
            if matching.next().is_some() { items.last().map(|execution| execution.id) } else { None };
        Ok(ExecutionPage { items, next_cursor })
    }

    async fn update_execution(
        &self,
        id: ExecutionId,
        update: ExecutionUpdate,
    ) -> Result<Recorded<Execution>, StoreError> {
        self.state()?.update_execution(id, update)
    }

    async fn update_execution_with_logs(
        &self,
        id: ExecutionId,
        update: ExecutionUpdate,
        lines: Vec<NewLogLine>,
        items: Vec<NewItem>,
    ) -> Result<LoggedUpdate, StoreError> {
        let mut state = self.state()?;
        // The update checks everything that can refuse the change before anything is written, so a refusal appends
        // no line and stores no item either.
        let recorded = state.update_execution(id, update)?;
        let last_seq = state.append_logs(id, lines);
        let items = state.upsert_items(id, items);
        Ok(LoggedUpdate { recorded, last_seq, items })
    }

    async fn set_session_id(&self, id: ExecutionId, session_id: &str) -> Result<Execution, StoreError> {
        let mut state = self.state()?;
        let execution = state.executions.get_mut(&id).ok_or_else(|| StoreError::execution_not_found(id))?;
        execution.session_id = Some(session_id.to_owned());
        Ok(execution.clone())
    }

    async fn get_diff(&self, id: ExecutionId) -> Result<Option<String>, StoreError> {
        Ok(self.state()?.diffs.get(&id).cloned())
    }

    async fn list_unfinished(&self) -> Result<Vec<Execution>, StoreError> {
        let state = self.state()?;
        Ok(state.executions.values().filter(|execution| !execution.status.is_terminal()).cloned().collect())
    }

    async fn count_by_status(&self) -> Result<StatusCounts, StoreError> {
        let state = self.state()?;
        let mut counts: BTreeMap<ExecutionStatus, u64> =
            ExecutionStatus::ALL.map(|status| (status, 0)).into();
        for execution in state.executions.values() {
            *counts.entry(execution.status).or_default() += 1;
        }
        Ok(StatusCounts(counts))
    }

    async fn append_logs(&self, id: ExecutionId, lines: Vec<NewLogLine>) -> Result<u64, StoreError> {
        let mut state = self.state()?;
        if !state.executions.contains_key(&id) {
            return Err(StoreError::execution_not_found(id));
        }
        Ok(state.append_logs(id, lines))
    }

    async fn read_logs(&self, id: ExecutionId, after: u64, limit: usize) -> Result<Vec<LogLine>, StoreError> {
        let state = self.state()?;
        let Some(stored) = state.logs.get(&id) else {
            return Ok(Vec::new());
        };
        // Seqs have no gaps, so the lines after `after` start at index `after`.
        let start = usize::try_from(after).unwrap_or(usize::MAX).min(stored.len());
        Ok(stored[start..].iter().take(limit).cloned().collect())
    }

    async fn upsert_items(&self, id: ExecutionId, items: Vec<NewItem>) -> Result<Vec<Item>, StoreError> {
        let mut state = self.state()?;
        if !state.executions.contains_key(&id) {
            return Err(StoreError::execution_not_found(id));
        }
        Ok(state.upsert_items(id, items))
    }

    async fn list_items(&self, id: ExecutionId, after: u64, limit: usize) -> Result<Vec<Item>, StoreError> {
        let state = self.state()?;
        let Some(stored) = state.items.get(&id) else {
            return Ok(Vec::new());
        };
        // Seqs have no gaps, so the items after `after` start at index `after`.
        let start = usize::try_from(after).unwrap_or(usize::MAX).min(stored.in_order.len());
        Ok(stored.in_order[start..].iter().take(limit).cloned().collect())
    }

    async fn create_approval(
        &self,
        approval: Approval,
        item: Option<NewItem>,
    ) -> Result<ApprovalChange, StoreError> {
        let mut state = self.state()?;
        let id = approval.execution_id;
        let status = state.executions.get(&id).ok_or_else(|| StoreError::execution_not_found(id))?.status;
        if state.approvals.contains_key(&approval.id) {
            let message = format!("an approval with id {} exists already", approval.id);
            return Err(CoreError::invalid_field("id", message).into());
        }
        let moves = approval.is_pending() && status == ExecutionStatus::Running;
        if approval.is_pending() && !matches!(status, ExecutionStatus::Running | ExecutionStatus::Waiting) {
            return Err(StoreError::StatusMismatch { expected: ExecutionStatus::Running, actual: status });
        }
        state.approvals.insert(approval.id, approval.clone());
        let mut events = vec![state.record(NewEvent::for_approval(EventKind::ApprovalRequested, &approval))];
        if !approval.is_pending() {
            events.push(state.record(NewEvent::for_approval(EventKind::ApprovalDecided, &approval)));
        }
        if moves {
            let update = ExecutionUpdate::new(ExecutionStatus::Running, ExecutionStatus::Waiting);
            events.push(state.update_execution(id, update)?.event);
        }
        let items = state.upsert_items(id, item.into_iter().collect());
        let execution = state.executions[&id].clone();
        Ok(ApprovalChange { approval, execution, events, items })
    }

    async fn decide_approval(
        &self,
        id: ApprovalId,
        decision: ApprovalDecision,
        item: Option<NewItem>,
    ) -> Result<ApprovalChange, StoreError> {
        let mut state = self.state()?;
        let stored = state.approvals.get(&id).ok_or_else(|| StoreError::approval_not_found(id))?;
        if !stored.is_pending() {
            return Err(StoreError::AlreadyDecided { existing: Box::new(stored.clone()) });
        }
        if decision.status == ApprovalStatus::Pending {
            return Err(
                CoreError::invalid_field("status", "a decision cannot leave the approval pending").into()
            );
        }
        let approval = decision.apply(stored, now());
        let execution_id = approval.execution_id;
        // Checked before anything changes: the change is whole or not made.
        let status = state.executions.get(&execution_id).map(|execution| execution.status);
        let Some(status) = status else { return Err(StoreError::execution_not_found(execution_id)) };
        state.approvals.insert(id, approval.clone());
        let mut events = vec![state.record(NewEvent::for_approval(EventKind::ApprovalDecided, &approval))];
        let still_waits =
            state.approvals.values().any(|other| other.execution_id == execution_id && other.is_pending());
        if status == ExecutionStatus::Waiting && !still_waits {
            let update = ExecutionUpdate::new(ExecutionStatus::Waiting, ExecutionStatus::Running);
            events.push(state.update_execution(execution_id, update)?.event);
        }
        let items = state.upsert_items(execution_id, item.into_iter().collect());
        let execution = state
            .executions
            .get(&execution_id)
            .cloned()
            .ok_or_else(|| StoreError::execution_not_found(execution_id))?;
        Ok(ApprovalChange { approval, execution, events, items })
    }

    async fn get_approval(&self, id: ApprovalId) -> Result<Option<Approval>, StoreError> {
        Ok(self.state()?.approvals.get(&id).cloned())
    }

    async fn list_approvals(&self, query: &ApprovalQuery) -> Result<Vec<Approval>, StoreError> {
        let state = self.state()?;
        let matches = |approval: &&Approval| {
            (!query.pending_only || approval.is_pending())
                && query.execution.is_none_or(|execution| approval.execution_id == execution)
        };
        let limit = query.limit.max(1);
        let found = if query.pending_only {
            state.approvals.values().filter(matches).take(limit).cloned().collect()
        } else {
            state.approvals.values().rev().filter(matches).take(limit).cloned().collect()
        };
        Ok(found)
    }

    async fn count_pending_approvals(&self) -> Result<u64, StoreError> {
        Ok(self.state()?.approvals.values().filter(|approval| approval.is_pending()).count() as u64)
    }

    async fn session_grant(
        &self,
        session_id: &str,
        kind: ApprovalKind,
        grant_key: &str,
    ) -> Result<Option<Approval>, StoreError> {
        let state = self.state()?;
        Ok(state
            .approvals
            .values()
            .rev()
            .find(|approval| {
                approval.for_session
                    && approval.status == ApprovalStatus::Approved
                    && approval.kind == kind
                    && approval.session_id.as_deref() == Some(session_id)
                    && approval.grant_key.as_deref() == Some(grant_key)
            })
            .cloned())
    }

    async fn spend_since(&self, query: &SpendQuery) -> Result<Spend, StoreError> {
        let state = self.state()?;
        let mut spend = Spend::default();
        let matching = state.executions.values().filter(|execution| {
            execution.created_at >= query.since
                && query.function.as_ref().is_none_or(|function| &execution.function == function)
                && query
                    .triggered_by
                    .as_ref()
                    .is_none_or(|name| execution.triggered_by.as_ref() == Some(name))
        });
        for execution in matching {
            let (cost_usd, tokens) = usage_spend(execution.usage.as_ref());
            spend.cost_usd += cost_usd;
            spend.tokens = spend.tokens.saturating_add(tokens);
            spend.executions += 1;
        }
        Ok(spend)
    }

    async fn daily_spend(&self, since: Timestamp) -> Result<Vec<DailySpend>, StoreError> {
        let state = self.state()?;
        let mut by_day: BTreeMap<(String, String), Spend> = BTreeMap::new();
        for execution in state.executions.values().filter(|execution| execution.created_at >= since) {
            let day = execution.created_at.date().to_string();
            let spend = by_day.entry((day, execution.function.clone())).or_default();
            let (cost_usd, tokens) = usage_spend(execution.usage.as_ref());
            spend.cost_usd += cost_usd;
            spend.tokens = spend.tokens.saturating_add(tokens);
            spend.executions += 1;
        }
        Ok(by_day.into_iter().map(|((day, function), spend)| DailySpend { day, function, spend }).collect())
    }

    async fn create_schedule(&self, schedule: Schedule) -> Result<Recorded<Schedule>, StoreError> {
        let mut state = self.state()?;
        if state.schedules.contains_key(&schedule.id) {
            let message = format!("a schedule with id {} exists already", schedule.id);
            return Err(CoreError::invalid_field("id", message).into());
        }
        state.schedules.insert(schedule.id, schedule.clone());
        let event = state.record(NewEvent::for_schedule(EventKind::ScheduleCreated, &schedule));
        Ok(Recorded { value: schedule, event })
    }

    async fn get_schedule(&self, id: ScheduleId) -> Result<Option<Schedule>, StoreError> {
        Ok(self.state()?.schedules.get(&id).cloned())
    }

    async fn list_schedules(&self) -> Result<Vec<Schedule>, StoreError> {
        Ok(self.state()?.schedules.values().cloned().collect())
    }

    async fn update_schedule(&self, schedule: Schedule) -> Result<Recorded<Schedule>, StoreError> {
        let mut state = self.state()?;
        let stored =
            state.schedules.get(&schedule.id).ok_or_else(|| StoreError::schedule_not_found(schedule.id))?;
        let schedule = Schedule {
            created_at: stored.created_at,
            last_run_at: stored.last_run_at,
            last_execution: stored.last_execution,
            skipped: stored.skipped,
            ..schedule
        };
        state.schedules.insert(schedule.id, schedule.clone());
        let event = state.record(NewEvent::for_schedule(EventKind::ScheduleUpdated, &schedule));
        Ok(Recorded { value: schedule, event })
    }

    async fn delete_schedule(&self, id: ScheduleId) -> Result<Recorded<Schedule>, StoreError> {
        let mut state = self.state()?;
        let schedule = state.schedules.remove(&id).ok_or_else(|| StoreError::schedule_not_found(id))?;
        let event = state.record(NewEvent::for_schedule(EventKind::ScheduleDeleted, &schedule));
        Ok(Recorded { value: schedule, event })
    }

    async fn due_schedules(&self, now: Timestamp, limit: usize) -> Result<Vec<Schedule>, StoreError> {
        let state = self.state()?;
        let mut due: Vec<&Schedule> = state
            .schedules
            .values()
            .filter(|schedule| schedule.enabled && schedule.next_run_at.is_some_and(|at| at <= now))
            .collect();
        due.sort_by_key(|schedule| (schedule.next_run_at, schedule.id));
        Ok(due.into_iter().take(limit.max(1)).cloned().collect())
    }

    async fn fire_schedule(&self, fire: ScheduleFire) -> Result<Option<FiredSchedule>, StoreError> {
        let mut state = self.state()?;
        let Some(schedule) = state.schedules.get(&fire.id) else { return Ok(None) };
        if !schedule.enabled || schedule.next_run_at != Some(fire.due) {
            return Ok(None);
        }
        let schedule = schedule.clone();
        state.fire(schedule, fire).map(Some)
    }

    fn set_outbox_rules(&self, rules: Vec<OutboxRule>) {
        // Rules are configuration, not data a panic can have left half written: set them even on a poisoned lock.
        self.state.lock().unwrap_or_else(PoisonError::into_inner).outbox_rules = rules;
    }

    async fn claim_deliveries(
        &self,
        owner: &str,
        notification: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut state = self.state()?;
        let at = now();
        let mut due: Vec<(Option<Timestamp>, DeliveryId)> = state
            .deliveries
            .values()
            .filter(|entry| entry.delivery.notification == notification && entry.is_claimable(at))
            .map(|entry| (entry.delivery.next_attempt_at, entry.delivery.id))
            .collect();
        due.sort_unstable();
        due.truncate(limit.max(1));
        let expires_at = at + lease.min(MAX_LEASE);
        let mut claimed = Vec::with_capacity(due.len());
        for (_, id) in due {
            if let Some(entry) = state.deliveries.get_mut(&id) {
                entry.lease = Some(DeliveryLease { owner: owner.to_owned(), expires_at });
                claimed.push(entry.delivery.clone());
            }
        }
        Ok(claimed)
    }

    async fn finish_delivery(
        &self,
        id: DeliveryId,
        owner: &str,
        outcome: DeliveryOutcome,
    ) -> Result<Option<FinishedDelivery>, StoreError> {
        let mut state = self.state()?;
        let Some(entry) = state.deliveries.get_mut(&id).filter(|entry| entry.is_held_by(owner)) else {
            return Ok(None);
        };
        entry.lease = None;
        let delivery = &mut entry.delivery;
        let is_given_up = outcome.is_given_up();
        outcome.apply_to(delivery, now());
        let delivery = delivery.clone();
        let event = is_given_up.then(|| state.record(NewEvent::notification_failed(&delivery)));
        Ok(Some(FinishedDelivery { delivery, event }))
    }

    async fn list_deliveries(&self, query: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError> {
        let state = self.state()?;
        let upper = query.before.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(state
            .deliveries
            .range((Bound::Unbounded, upper))
            .rev()
            .map(|(_, entry)| &entry.delivery)
            .filter(|delivery| {
                query.status.is_none_or(|status| delivery.status == status)
                    && query.notification.as_ref().is_none_or(|name| &delivery.notification == name)
                    && query.execution.is_none_or(|execution| delivery.event.execution_id == Some(execution))
            })
            .take(query.limit.max(1))
            .cloned()
            .collect())
    }

    async fn list_events(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        let state = self.state()?;
        let start = state.events.partition_point(|event| event.id <= after);
        Ok(state.events[start..].iter().take(limit).cloned().collect())
    }

    async fn last_event_id(&self) -> Result<u64, StoreError> {
        Ok(self.state()?.events.last().map_or(0, |event| event.id))
    }

    async fn prune_finished_before(&self, cutoff: Timestamp, limit: usize) -> Result<usize, StoreError> {
        let mut state = self.state()?;
        // Oldest finished first, so repeated calls work through the backlog in order.
        let mut doomed: Vec<(Timestamp, ExecutionId)> = state
            .executions
            .values()
            .filter(|execution| execution.status.is_terminal())
            .filter_map(|execution| {
                execution.finished_at.filter(|at| *at < cutoff).map(|at| (at, execution.id))
            })
            .collect();
        doomed.sort_unstable();
        doomed.truncate(limit);
        let doomed: HashSet<ExecutionId> = doomed.into_iter().map(|(_, id)| id).collect();
        for id in &doomed {
            if let Some(execution) = state.executions.remove(id)
                && let Some(key) = execution.idempotency_key
            {
                state.execution_ids_by_key.remove(&key);
            }
            state.logs.remove(id);
            state.items.remove(id);
            state.diffs.remove(id);
        }
        state.approvals.retain(|_, approval| !doomed.contains(&approval.execution_id));
        state.events.retain(|event| match event.execution_id {
            Some(execution_id) => !doomed.contains(&execution_id),
            None => event.ts >= cutoff,
        });
        // Pending deliveries are kept, whatever their age: they are still owed.
        state.deliveries.retain(|_, entry| {
            entry.delivery.status == DeliveryStatus::Pending
                || entry.delivery.finished_at.is_none_or(|at| at >= cutoff)
        });
        Ok(doomed.len())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.state().map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_under_the_lock_makes_the_store_unavailable() {
        let store = MemoryStore::default();
        store.ping().await.expect("a fresh store answers");
        std::thread::scope(|scope| {
            let panicked = scope
                .spawn(|| {
                    let _guard = store.state.lock();
                    panic!("a change fails half way");
                })
                .join();
            assert!(panicked.is_err(), "the thread was meant to panic");
        });
        let result = store.list_functions().await;
        assert!(matches!(result, Err(StoreError::Unavailable { .. })), "got {result:?}");
        assert!(
            matches!(store.ping().await, Err(StoreError::Unavailable { .. })),
            "the health check must fail too"
        );
    }
}
