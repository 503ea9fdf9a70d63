//! The queue of executions waiting for a slot, and the concurrency limits that decide which may start.

use std::collections::{HashMap, VecDeque};

use dashboard_core::{Execution, ExecutionId, FunctionId};

/// An execution waiting to run, with the concurrency limit of its function when it was queued.
#[derive(Clone, Debug)]
pub(crate) struct QueuedRun {
    pub(crate) execution: Execution,
    pub(crate) max_concurrency: Option<u32>,
    /// The prompt as rendered when it was triggered (`Some(None)`: its function has none), so that a run renders its
    /// prompt once; `None` for an execution queued again after a restart, whose prompt is rendered at its start.
    pub(crate) prompt: Option<Option<String>>,
}

/// What is waiting and what is running, in memory; the store holds the same facts durably, so recovery can
/// rebuild this after a restart.
#[derive(Debug)]
pub(crate) struct Scheduler {
    queue: VecDeque<QueuedRun>,
    running_total: usize,
    running_by_function: HashMap<FunctionId, u32>,
    global_limit: usize,
    is_paused: bool,
}

impl Scheduler {
    pub(crate) fn new(global_limit: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            running_total: 0,
            running_by_function: HashMap::new(),
            global_limit: global_limit.max(1),
            is_paused: false,
        }
    }

    /// Adds an execution at the end of the queue.
    pub(crate) fn push(&mut self, run: QueuedRun) {
        self.queue.push_back(run);
    }

    /// Removes a queued execution (it was cancelled); whether it was there.
    pub(crate) fn remove(&mut self, id: ExecutionId) -> bool {
        let before = self.queue.len();
        self.queue.retain(|run| run.execution.id != id);
        self.queue.len() != before
    }

    /// Takes, in queue order, every execution that may start now, and counts them as running. An execution whose
    /// function is at its limit stays queued without holding up the others behind it.
    pub(crate) fn take_startable(&mut self) -> Vec<QueuedRun> {
        let mut startable = Vec::new();
        let mut index = 0;
        while !self.is_paused && self.running_total < self.global_limit && index < self.queue.len() {
            let run = &self.queue[index];
            let running = self.running_by_function.get(&run.execution.function_id).copied().unwrap_or(0);
            if run.max_concurrency.is_some_and(|limit| running >= limit) {
                index += 1;
                continue;
            }
            let run = self.queue.remove(index).expect("index is within the queue");
            *self.running_by_function.entry(run.execution.function_id).or_default() += 1;
            self.running_total += 1;
            startable.push(run);
        }
        startable
    }

    /// How many more runs may start now: the global limit less the runs counted as running; none while paused. In
    /// cluster mode this is how many queued executions the instance claims from the store.
    pub(crate) fn free_slots(&self) -> usize {
        if self.is_paused { 0 } else { self.global_limit.saturating_sub(self.running_total) }
    }

    /// Counts a run of `function_id` claimed from the store as running, if the global limit allows it and starting is
    /// not paused; whether it was admitted. Its function's limit was held by the claim, across instances.
    pub(crate) fn admit(&mut self, function_id: FunctionId) -> bool {
        if self.free_slots() == 0 {
            return false;
        }
        *self.running_by_function.entry(function_id).or_default() += 1;
        self.running_total += 1;
        true
    }

    /// Frees the slot of a run of `function_id` that has ended.
    pub(crate) fn release(&mut self, function_id: FunctionId) {
        self.running_total = self.running_total.saturating_sub(1);
        if let Some(count) = self.running_by_function.get_mut(&function_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.running_by_function.remove(&function_id);
            }
        }
    }

    /// Stops starting new runs (shutdown).
    pub(crate) fn pause(&mut self) {
        self.is_paused = true;
    }

    /// How many executions wait.
    pub(crate) fn queue_depth(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use dashboard_core::{ExecutionStatus, now};
    use serde_json::json;

    use super::*;

    fn queued(function_id: FunctionId, max_concurrency: Option<u32>) -> QueuedRun {
        let execution = Execution {
            id: ExecutionId::generate(),
            function: "f".into(),
            function_id,
            function_version: 1,
            backend: "demo".into(),
            input: json!({}),
            status: ExecutionStatus::Queued,
            output: None,
            error: None,
            usage: None,
            attempt: 1,
            retry_of: None,
            idempotency_key: None,
            triggered_by: None,
            session_id: None,
            continues: None,
            prompt: None,
            instance: None,
            created_at: now(),
            started_at: None,
            finished_at: None,
        };
        QueuedRun { execution, max_concurrency, prompt: None }
    }

    #[test]
    fn the_global_limit_holds_back_the_rest() {
        let mut scheduler = Scheduler::new(2);
        let function_id = FunctionId::generate();
        (0..5).for_each(|_| scheduler.push(queued(function_id, None)));
        assert_eq!(scheduler.take_startable().len(), 2);
        assert_eq!(scheduler.take_startable().len(), 0);
        scheduler.release(function_id);
        assert_eq!(scheduler.take_startable().len(), 1);
        assert_eq!(scheduler.queue_depth(), 2);
    }

    #[test]
    fn a_function_at_its_limit_does_not_block_others() {
        let mut scheduler = Scheduler::new(10);
        let (limited, free) = (FunctionId::generate(), FunctionId::generate());
        scheduler.push(queued(limited, Some(1)));
        scheduler.push(queued(limited, Some(1)));
        scheduler.push(queued(free, None));
        let started: Vec<FunctionId> =
            scheduler.take_startable().iter().map(|run| run.execution.function_id).collect();
        assert_eq!(started, [limited, free]);
        scheduler.release(limited);
        assert_eq!(scheduler.take_startable().len(), 1);
    }

    #[test]
    fn claimed_runs_are_admitted_up_to_the_global_limit_and_not_while_paused() {
        let mut scheduler = Scheduler::new(2);
        let function_id = FunctionId::generate();
        assert_eq!(scheduler.free_slots(), 2);
        assert!(scheduler.admit(function_id));
        assert!(scheduler.admit(function_id));
        assert!(!scheduler.admit(function_id), "the global limit holds");
        scheduler.release(function_id);
        assert_eq!(scheduler.free_slots(), 1);
        scheduler.pause();
        assert_eq!(scheduler.free_slots(), 0);
        assert!(!scheduler.admit(function_id), "nothing starts while paused");
    }

    #[test]
    fn paused_and_removed_runs_do_not_start() {
        let mut scheduler = Scheduler::new(10);
        let run = queued(FunctionId::generate(), None);
        let id = run.execution.id;
        scheduler.push(run);
        assert!(scheduler.remove(id));
        assert!(!scheduler.remove(id));
        scheduler.push(queued(FunctionId::generate(), None));
        scheduler.pause();
        assert!(scheduler.take_startable().is_empty());
    }
}
