//! Schedules: cron expressions read in their time zone, the schedules' API, and the loop that fires each due time
//! once — on one instance or many, since the store's `fire_schedule` is a compare-and-set on the due time.
//!
//! A due time missed while no instance ran fires once when one starts: the next due time is computed after the later
//! of now and the missed one, so the times in between are not fired one by one.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use dashboard_backend_api::{Action, Principal, Scope};
use dashboard_core::{CoreError, Function, Overlap, Schedule, ScheduleId, ScheduleSpec, Timestamp, now};
use dashboard_store::{FireAction, FunctionKey, NewExecution, ScheduleFire};
use tokio::sync::Notify;

use crate::inner::Inner;
use crate::{Dashboard, EngineError};

/// How often the fire loop looks for due schedules when nothing wakes it; it also looks this far ahead, and sleeps
/// until the earliest due time it finds, so a fire is late by a timer's and a write's time, not by the tick.
const TICK: Duration = Duration::from_millis(500);
/// The shortest sleep between two looks, so that a due time the store keeps refusing cannot spin the loop.
const LEAST_WAIT: Duration = Duration::from_millis(10);
/// How many due schedules one look fires.
const BATCH: usize = 64;

/// A schedule's expression read in its time zone: the times it comes due.
pub(crate) struct CronTimes {
    cron: Cron,
    zone: jiff::tz::TimeZone,
}

impl CronTimes {
    /// Parses an expression of five fields or six (seconds first) and an IANA zone; errors name `cron` or `timezone`.
    pub(crate) fn parse(cron: &str, timezone: &str) -> Result<Self, CoreError> {
        let parser = CronParser::builder().seconds(Seconds::Optional).year(Year::Disallowed).build();
        let cron = parser.parse(cron.trim()).map_err(|error| {
            CoreError::invalid_field("cron", format!("not a cron expression of 5 or 6 fields: {error}"))
        })?;
        let zone = jiff::tz::TimeZone::get(timezone).map_err(|_| {
            CoreError::invalid_field("timezone", format!("{timezone:?} is not an IANA time zone name"))
        })?;
        Ok(Self { cron, zone })
    }

    /// The first due time strictly after `at`, `None` when there is none (an expression of a day that never comes).
    pub(crate) fn next_after(&self, at: Timestamp) -> Option<Timestamp> {
        let instant = jiff::Timestamp::from_nanosecond(at.unix_timestamp_nanos()).ok()?;
        let next = self.cron.find_next_occurrence(&instant.to_zoned(self.zone.clone()), false).ok()?;
        Timestamp::from_unix_timestamp_nanos(next.timestamp().as_nanosecond()).ok()
    }
}

/// What [`Dashboard::ensure_schedule`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ensured {
    /// The schedule was missing and is now created.
    Created,
    /// Its declaration differed and is now replaced.
    Updated,
    /// It was as declared already.
    Unchanged,
}

/// Checks a spec's expression and zone and returns the first due time after now.
fn first_due(spec: &ScheduleSpec) -> Result<Timestamp, EngineError> {
    spec.validate()?;
    let times = CronTimes::parse(&spec.cron, &spec.timezone)?;
    times.next_after(now()).ok_or_else(|| CoreError::invalid_field("cron", "never comes due").into())
}

impl Dashboard {
    /// Creates a schedule, when the principal may change functions on the function's backend: the expression, the
    /// zone and the input (against the function's schema) are checked first.
    pub async fn create_schedule(
        &self,
        principal: &Principal,
        spec: ScheduleSpec,
    ) -> Result<Schedule, EngineError> {
        self.check_schedule(Some(principal), &spec).await?;
        let next = first_due(&spec)?;
        let schedule = Schedule::create(ScheduleId::generate(), spec, Some(next), now());
        let recorded = self.inner.observe(self.inner.store.create_schedule(schedule).await)?;
        self.inner.schedules_changed.notify_one();
        Ok(self.inner.publish(recorded))
    }

    /// Makes the schedule `id` of the config file what `spec` declares: creates it when missing, replaces its
    /// declaration when it differs (due next from now, its history kept), and leaves it be when it is the same (so a
    /// due time missed while the server was down still fires). No principal: the file is the operator's.
    pub async fn ensure_schedule(&self, id: ScheduleId, spec: ScheduleSpec) -> Result<Ensured, EngineError> {
        // Compared as stored: the expression without the spaces around it.
        let spec = ScheduleSpec { cron: spec.cron.trim().to_owned(), ..spec };
        let stored = self.inner.store.get_schedule(id).await?;
        // One with no due time left (its zone skipped the day it would fire) is recomputed, as a changed one is.
        let is_alive = |stored: &Schedule| stored.next_run_at.is_some() || !stored.enabled;
        if stored.as_ref().is_some_and(|stored| stored.spec() == spec && is_alive(stored)) {
            return Ok(Ensured::Unchanged);
        }
        self.check_schedule(None, &spec).await?;
        let next = first_due(&spec)?;
        let (result, ensured) = match stored {
            Some(stored) => {
                let replaced = stored.replaced_by(spec, Some(next), now());
                (self.inner.store.update_schedule(replaced).await, Ensured::Updated)
            }
            None => {
                let schedule = Schedule::create(id, spec, Some(next), now());
                (self.inner.store.create_schedule(schedule).await, Ensured::Created)
            }
        };
        match result {
            Ok(recorded) => {
                self.inner.schedules_changed.notify_one();
                self.inner.publish(recorded);
                Ok(ensured)
            }
            // Another instance, starting with the same file, created it first.
            Err(_) if ensured == Ensured::Created && self.inner.store.get_schedule(id).await?.is_some() => {
                Ok(Ensured::Unchanged)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Replaces a schedule's declaration; its next due time is computed afresh from now, its history kept.
    pub async fn update_schedule(
        &self,
        principal: &Principal,
        id: ScheduleId,
        spec: ScheduleSpec,
    ) -> Result<Schedule, EngineError> {
        let current = self.schedule(id).await?;
        self.check_schedule(Some(principal), &current.spec()).await.or_else(|error| match error {
            // The function it named may be gone: what matters is the right to change the new one.
            EngineError::NotFound { entity: "function", .. } | EngineError::Invalid(_) => Ok(()),
            other => Err(other),
        })?;
        self.check_schedule(Some(principal), &spec).await?;
        let next = first_due(&spec)?;
        let recorded = self
            .inner
            .observe(self.inner.store.update_schedule(current.replaced_by(spec, Some(next), now())).await)?;
        self.inner.schedules_changed.notify_one();
        Ok(self.inner.publish(recorded))
    }

    /// Deletes a schedule; the executions it fired are kept.
    pub async fn delete_schedule(
        &self,
        principal: &Principal,
        id: ScheduleId,
    ) -> Result<Schedule, EngineError> {
        let current = self.schedule(id).await?;
        match self.function(&FunctionKey::Name(current.function.clone())).await {
            Ok(function) => self.authorize(principal, &function.backend, Action::ChangeFunction)?,
            // Its function is gone, and with it the backend a grant would name: the scope alone decides.
            Err(EngineError::NotFound { .. }) if principal.has_scope(Scope::Admin) => {}
            Err(EngineError::NotFound { .. }) => {
                return Err(EngineError::Forbidden {
                    backend: String::new(),
                    reason: format!("the {} scope may not delete a schedule", principal.scope),
                });
            }
            Err(error) => return Err(error),
        }
        let recorded = self.inner.observe(self.inner.store.delete_schedule(id).await)?;
        Ok(self.inner.publish(recorded))
    }

    /// A schedule that must exist.
    pub async fn schedule(&self, id: ScheduleId) -> Result<Schedule, EngineError> {
        self.inner.store.get_schedule(id).await?.ok_or_else(|| EngineError::schedule_not_found(id))
    }

    /// All schedules, in id order (those created through the API oldest first).
    pub async fn schedules(&self) -> Result<Vec<Schedule>, EngineError> {
        Ok(self.inner.store.list_schedules().await?)
    }

    /// Fires the due schedules in the background: at once, then whenever one is due (looked for every half second,
    /// half a second ahead, and at once after a schedule changes here). The task ends when the engine shuts down or is dropped.
    pub fn spawn_schedules(&self) -> tokio::task::JoinHandle<()> {
        let inner = Arc::downgrade(&self.inner);
        let changed = Arc::clone(&self.inner.schedules_changed);
        tokio::spawn(fire_loop(inner, changed))
    }

    /// Fires every schedule due now, once each; returns how many fires (runs and skips) this call stored. A fire the
    /// store could not take is left due, for the next call; the error of the first such fire is returned once every
    /// due schedule has been tried.
    pub async fn fire_due_schedules(&self) -> Result<usize, EngineError> {
        let due = self.inner.store.due_schedules(now(), BATCH).await?;
        let (mut fired, mut failure) = (0, None);
        for schedule in due {
            if !self.inner.is_accepting.load(Ordering::SeqCst) {
                break;
            }
            match self.fire(&schedule).await {
                Ok(true) => fired += 1,
                Ok(false) => {}
                Err(error) => {
                    failure.get_or_insert(error);
                }
            }
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(fired),
        }
    }

    /// How long until the earliest schedule falls due, when one does within `horizon`; else `horizon`. At least
    /// [`LEAST_WAIT`].
    async fn until_next_due(&self, horizon: Duration) -> Duration {
        let at = now();
        let earliest = match self.inner.store.due_schedules(at + horizon, 1).await {
            Ok(due) => due.first().and_then(|schedule| schedule.next_run_at),
            Err(_) => None,
        };
        earliest
            .map_or(horizon, |next| Duration::try_from(next - now()).unwrap_or(Duration::ZERO))
            .clamp(LEAST_WAIT, horizon)
    }

    /// The principal's right to change functions on the schedule's function's backend (when there is a principal),
    /// the function's existence, the expression, the zone, and the input against the function's schema.
    async fn check_schedule(
        &self,
        principal: Option<&Principal>,
        spec: &ScheduleSpec,
    ) -> Result<(), EngineError> {
        spec.validate()?;
        let function =
            self.function(&FunctionKey::Name(spec.function.clone())).await.map_err(|error| match error {
                EngineError::NotFound { .. } => {
                    CoreError::invalid_field("function", format!("no function is called {:?}", spec.function))
                        .into()
                }
                other => other,
            })?;
        if let Some(principal) = principal {
            self.authorize(principal, &function.backend, Action::ChangeFunction)?;
        }
        CronTimes::parse(&spec.cron, &spec.timezone)?;
        let compiled = self.inner.compiled.get(&function).await?;
        compiled.prepare(&spec.input).await?;
        Ok(())
    }

    /// Fires one due schedule: an execution, or a skip saying why; false when another instance (or a change) got
    /// there first. An error (the store did not answer) writes nothing: the due time stays, for the next look.
    async fn fire(&self, schedule: &Schedule) -> Result<bool, EngineError> {
        let Some(due) = schedule.next_run_at else { return Ok(false) };
        let next = match CronTimes::parse(&schedule.cron, &schedule.timezone) {
            Ok(times) => times.next_after(now().max(due)),
            Err(error) => {
                log::warn!("schedule {}: {error}; it will not fire again until it is changed", schedule.id);
                None
            }
        };
        if next.is_none() {
            log::warn!(
                "schedule {} ({:?} in {}): no due time follows {due}; it fires no more until it is changed",
                schedule.id,
                schedule.cron,
                schedule.timezone
            );
        }
        let prepared = self.prepare_fire(schedule).await?;
        let action = match &prepared {
            Prepared::Run { new, .. } => FireAction::Run(new.as_ref().clone()),
            Prepared::Skip(reason) => FireAction::Skip { reason: reason.clone() },
        };
        let fire = ScheduleFire { id: schedule.id, due, next, action };
        let Some(fired) = self.inner.observe(self.inner.store.fire_schedule(fire).await)? else {
            return Ok(false);
        };
        for event in fired.events {
            self.publish_event(event);
        }
        if let (Some(execution), Prepared::Run { function, prompt, .. }) = (fired.execution, prepared) {
            self.queued(&function, execution, prompt);
        }
        Ok(true)
    }

    /// What a fire does: run (the execution, its function, its rendered prompt), or skip saying why — the previous
    /// run still going under `overlap = "skip"`, the function or its backend gone, a spent budget, an input the
    /// schema now refuses. An error is the store's: then nothing is fired.
    async fn prepare_fire(&self, schedule: &Schedule) -> Result<Prepared, EngineError> {
        if schedule.overlap == Overlap::Skip
            && let Some(previous) = schedule.last_execution
            && let Some(execution) = self.inner.store.get_execution(previous).await?
            && !execution.status.is_terminal()
        {
            let reason = format!("its previous execution {previous} is still {}", execution.status);
            return Ok(Prepared::Skip(reason));
        }
        let function = match self.function(&FunctionKey::Name(schedule.function.clone())).await {
            Ok(function) => function,
            Err(EngineError::NotFound { .. }) => {
                return Ok(Prepared::Skip(format!("the function {} does not exist", schedule.function)));
            }
            Err(error) => return Err(error),
        };
        if let Err(error) = self.check_backend("backend", &function.backend) {
            return Ok(Prepared::Skip(format!("the function {}: {error}", schedule.function)));
        }
        let new = NewExecution {
            triggered_by: Some(schedule.trigger_name()),
            ..NewExecution::of(&function, schedule.input.clone())
        };
        // What refuses a trigger skips the fire: a spent budget, an input (or a template) the function refuses.
        match self.admit(&function, &new).await {
            Ok(prompt) => Ok(Prepared::Run { new: Box::new(new), function, prompt }),
            Err(refused @ (EngineError::BudgetExhausted { .. } | EngineError::Invalid(_))) => {
                Ok(Prepared::Skip(refused.to_string()))
            }
            Err(error) => Err(error),
        }
    }
}

/// What a due schedule's fire is to do.
enum Prepared {
    /// Queue this execution of `function`, with its rendered prompt.
    Run { new: Box<NewExecution>, function: Arc<Function>, prompt: Option<String> },
    /// Create nothing, for this reason.
    Skip(String),
}

/// How long the fire loop waits after the store failed it, before it looks again.
const FAILING_TICK: Duration = Duration::from_secs(2);

async fn fire_loop(inner: Weak<Inner>, changed: Arc<Notify>) {
    // When the store began failing the loop, and how often since: one line when it begins, one when it ends.
    let mut failing: Option<(Instant, u64)> = None;
    loop {
        let Some(strong) = inner.upgrade() else { return };
        if !strong.is_accepting.load(Ordering::SeqCst) {
            return;
        }
        let dashboard = Dashboard { inner: strong };
        let result = dashboard.fire_due_schedules().await;
        let next_due = match &result {
            Ok(_) => dashboard.until_next_due(TICK).await,
            Err(_) => TICK,
        };
        drop(dashboard);
        let tick = match result {
            Ok(fired) => {
                if let Some((began, failures)) = failing.take() {
                    log::warn!(
                        "schedules: fire again, after {failures} failed looks in {:.1} s",
                        began.elapsed().as_secs_f64()
                    );
                }
                // A full batch: there may be more due at once.
                if fired >= BATCH {
                    continue;
                }
                next_due
            }
            Err(error) => {
                match &mut failing {
                    Some((_, failures)) => *failures += 1,
                    None => {
                        log::error!("schedules: could not fire due schedules: {error}; retrying every 2 s");
                        failing = Some((Instant::now(), 1));
                    }
                }
                FAILING_TICK
            }
        };
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            () = changed.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn five_and_six_fields_are_read_and_the_next_time_is_strictly_after() {
        let every_two_seconds = CronTimes::parse("*/2 * * * * *", "UTC").expect("six fields");
        let at = datetime!(2026-12-04 10:00:01.5 UTC);
        assert_eq!(every_two_seconds.next_after(at), Some(datetime!(2026-12-04 10:00:02 UTC)));
        assert_eq!(
            every_two_seconds.next_after(datetime!(2026-12-04 10:00:02 UTC)),
            Some(datetime!(2026-12-04 10:00:04 UTC))
        );
        let nightly = CronTimes::parse("0 3 * * *", "UTC").expect("five fields");
        assert_eq!(nightly.next_after(at), Some(datetime!(2026-12-05 03:00 UTC)));
        let daily = CronTimes::parse("@daily", "UTC").expect("a nickname");
        assert_eq!(daily.next_after(at), Some(datetime!(2026-12-05 00:00 UTC)));
    }

    #[test]
    fn the_expression_is_read_in_its_zone_across_daylight_saving() {
        let nine_in_berlin = CronTimes::parse("0 9 * * *", "Europe/Berlin").expect("a zone");
        // Winter: UTC+1.
        assert_eq!(
            nine_in_berlin.next_after(datetime!(2026-12-04 00:00 UTC)),
            Some(datetime!(2026-12-04 08:00 UTC))
        );
        // Summer: UTC+2.
        assert_eq!(
            nine_in_berlin.next_after(datetime!(2026-07-01 00:00 UTC)),
            Some(datetime!(2026-07-01 07:00 UTC))
        );
    }

    #[test]
    fn a_time_in_the_spring_forward_gap_fires_right_after_it_and_a_repeated_time_once() {
        // Berlin, 2027-03-28: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
        let half_past_two = CronTimes::parse("30 2 * * *", "Europe/Berlin").expect("a zone");
        let gap_day = half_past_two.next_after(datetime!(2027-03-27 23:00 UTC));
        assert_eq!(gap_day, Some(datetime!(2027-03-28 01:00 UTC)), "03:00 CEST, just after the gap");
        // 2027-10-31: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice and fires once.
        let first = half_past_two.next_after(datetime!(2027-10-30 23:00 UTC)).expect("a time");
        assert_eq!(first, datetime!(2027-10-31 00:30 UTC));
        assert_eq!(half_past_two.next_after(first), Some(datetime!(2027-11-01 01:30 UTC)));
    }

    #[test]
    fn errors_name_the_field() {
        let error = CronTimes::parse("every minute", "UTC").err().expect("not cron");
        assert!(error.to_string().contains("cron"), "{error}");
        let error = CronTimes::parse("* * * * *", "Mars/Olympus").err().expect("not a zone");
        assert!(error.to_string().contains("timezone"), "{error}");
        let error = CronTimes::parse("* * * * * * 2030", "UTC").err().expect("seven fields");
        assert!(error.to_string().contains("cron"), "{error}");
    }
}
