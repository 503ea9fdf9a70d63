//! Remote backends report back: each execution's callback token, and the log lines and status reports that a
//! detached run receives through the callback endpoints.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dashboard_backend_api::RunOutcome;
use dashboard_core::{CoreError, Execution, ExecutionId, ExecutionStatus, NewLogLine};
use dashboard_store::{ExecutionUpdate, FunctionKey};
use hmac::{KeyInit, Mac};
use serde_json::Value;

use crate::run::{LogBudget, output_too_large, truncate_line};
use crate::{Dashboard, EngineError};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// How long a status report waits for the run to record it.
const REPORT_SETTLE: std::time::Duration = std::time::Duration::from_secs(5);

/// The secret behind callback tokens. A token is the HMAC of the execution id under this key, so tokens need no
/// storage, one execution's token never fits another, and a restart (which ends every running execution) retires
/// them all.
pub(crate) struct CallbackKey([u8; 32]);

impl CallbackKey {
    pub(crate) fn generate() -> Self {
        let mut key = [0; 32];
        getrandom::fill(&mut key).expect("the operating system provides random bytes");
        Self(key)
    }

    fn mac(&self, id: ExecutionId) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(id.as_uuid().as_bytes());
        mac
    }

    /// The key every instance of a cluster shares.
    pub(crate) fn from_secret(secret: [u8; 32]) -> Self {
        Self(secret)
    }

    pub(crate) fn token(&self, id: ExecutionId) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(id).finalize().into_bytes())
    }

    /// Whether `token` is the token of `id`, compared in constant time.
    pub(crate) fn verify(&self, id: ExecutionId, token: &str) -> bool {
        match URL_SAFE_NO_PAD.decode(token) {
            Ok(tag) => self.mac(id).verify_slice(&tag).is_ok(),
            Err(_) => false,
        }
    }
}

/// What a remote agent says about an execution it runs.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusReport {
    /// `running`, `succeeded` or `failed`.
    pub status: ExecutionStatus,
    /// The result, with `succeeded`.
    pub output: Option<Value>,
    /// What went wrong, with `failed`.
    pub error: Option<String>,
    /// Token counts and the like.
    pub usage: Option<Value>,
}

impl Dashboard {
    /// The token a remote backend presents to report on execution `id`.
    pub fn callback_token(&self, id: ExecutionId) -> String {
        self.inner.callback_key.token(id)
    }

    /// Whether `token` authorizes reports on execution `id` (constant-time).
    pub fn verify_callback_token(&self, id: ExecutionId, token: &str) -> bool {
        self.inner.callback_key.verify(id, token)
    }

    /// Appends a remote agent's log lines; returns the seq of the last one. Refused once the execution has finished,
    /// so that no line can follow its end. The lines count against the execution's log limit, with those the run
    /// itself stored: past it, one `system` line says so and later lines are dropped (the answer is still a success).
    /// Lines the store refuses (a 503 on a full disk) are not counted, so the agent's retry of them counts once.
    ///
    /// In a cluster the report may reach an instance that does not run the execution: the lines are stored all the
    /// same (and reach every instance's listeners through the store), limited per report, since the run's count of
    /// its log lives on its own instance.
    pub async fn report_logs(&self, id: ExecutionId, mut lines: Vec<NewLogLine>) -> Result<u64, EngineError> {
        let execution = self.execution(id).await?;
        if execution.status.is_terminal() {
            return Err(EngineError::AlreadyFinished { id, status: execution.status });
        }
        for line in &mut lines {
            // Cut before the limit counts them, as the run's own lines are.
            truncate_line(&mut line.message, self.inner.settings.max_log_line_bytes);
        }
        let budget = self.inner.run_handle(id).map(|handle| Arc::clone(&handle.log_budget));
        let charge = match &budget {
            Some(budget) => budget.lock().expect("log budget lock poisoned").admit(&mut lines),
            // No run holds the execution (a report racing its end): the report is limited on its own.
            None => LogBudget::new(self.inner.settings.log_limit).admit(&mut lines),
        };
        let appended = self.inner.append_logs(id, lines, false).await;
        if appended.is_err()
            && let Some(budget) = budget
        {
            budget.lock().expect("log budget lock poisoned").refund(charge);
        }
        appended
    }

    /// Records a remote agent's status report. `running` changes nothing; `succeeded` or `failed` ends the run (its
    /// timeout no longer applies); a report on a finished execution is a no-op, so agents may safely repeat one.
    ///
    /// In a cluster the report may reach an instance that does not run the execution: it is stored here with the
    /// compare-and-set on `running` (the store lets exactly one end win), and the instance that runs it notices the
    /// end among the events it relays, stops its run, and adds the run's last lines and its closing line after it.
    /// An execution `waiting` for an approval is not ended by a report that reaches another instance.
    pub async fn report_status(
        &self,
        id: ExecutionId,
        report: StatusReport,
    ) -> Result<Execution, EngineError> {
        let execution = self.execution(id).await?;
        let outcome = match report.status {
            ExecutionStatus::Succeeded => {
                let output = report.output.unwrap_or(Value::Null);
                match output_too_large(&output, self.inner.settings.max_output_bytes) {
                    None => RunOutcome::Succeeded { output, usage: report.usage },
                    Some(error) => RunOutcome::Failed { error },
                }
            }
            ExecutionStatus::Failed => RunOutcome::Failed {
                error: report
                    .error
                    .unwrap_or_else(|| "the agent reported a failure without a reason".to_owned()),
            },
            ExecutionStatus::Running => return Ok(execution),
            other => {
                return Err(CoreError::invalid_field(
                    "status",
                    format!("{other} cannot be reported; report running, succeeded or failed"),
                )
                .into());
            }
        };
        if execution.status.is_terminal() {
            return Ok(execution);
        }
        match self.inner.run_handle(id) {
            Some(handle) => {
                // The run task records the outcome after storing its last log lines; wait for it to finish.
                let deadline = tokio::time::Instant::now() + REPORT_SETTLE;
                handle.deliver(outcome);
                while self.inner.run_handle(id).is_some() {
                    let ended = self.inner.runs_ended.notified();
                    if self.inner.run_handle(id).is_none()
                        || tokio::time::timeout_at(deadline, ended).await.is_err()
                    {
                        break;
                    }
                }
            }
            None if execution.status == ExecutionStatus::Running => {
                let update = match outcome {
                    RunOutcome::Succeeded { output, usage } => {
                        // Priced by the function's model, as the run would have priced it.
                        let function = match usage {
                            Some(_) => {
                                self.inner.store.get_function(&FunctionKey::Id(execution.function_id)).await?
                            }
                            None => None,
                        };
                        let usage = usage.map(|usage| self.inner.usage_in_shape(&usage, function.as_ref()));
                        ExecutionUpdate::new(ExecutionStatus::Running, ExecutionStatus::Succeeded)
                            .output(output)
                            .usage(usage)
                    }
                    RunOutcome::Failed { error } => {
                        ExecutionUpdate::new(ExecutionStatus::Running, ExecutionStatus::Failed).error(error)
                    }
                    RunOutcome::Detached => return Ok(execution),
                };
                self.inner.transition(id, update).await?;
            }
            None => {}
        }
        self.execution(id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_fits_its_own_execution_only() {
        let key = CallbackKey::generate();
        let (mine, other) = (ExecutionId::generate(), ExecutionId::generate());
        let token = key.token(mine);
        assert!(key.verify(mine, &token));
        assert!(!key.verify(other, &token));
        assert!(!key.verify(mine, "not base64 !"));
        assert!(!key.verify(mine, ""));
        assert!(!CallbackKey::generate().verify(mine, &token), "another process's token");
    }
}
