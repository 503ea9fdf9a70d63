//! The domain of Agent Dashboard: what a function, an execution, a log line, an item, an approval, a schedule, a notification's delivery and an event are, and the rules they obey.
//!
//! Every other crate speaks in these types, so they live apart from any I/O: this crate reads no file, opens no
//! socket, knows no SQL, HTTP, template or async runtime. What it owns is the rules — the execution status machine,
//! name and input validation, the sentence each event says — so that every store, backend and front end applies the
//! same ones.

mod approval;
mod error;
mod event;
mod execution;
mod function;
mod ids;
mod item;
mod log;
mod notification;
mod schedule;
mod schema;
pub mod standard_webhooks;
mod time_util;
mod usage;

pub use approval::{
    Approval, ApprovalDecision, ApprovalKind, ApprovalPolicy, ApprovalStatus, DEFAULT_APPROVAL_TIMEOUT_SECS,
    Decision, MAX_APPROVAL_DETAILS_BYTES, MAX_APPROVAL_NOTE_CHARS, MAX_APPROVAL_SUMMARY_BYTES,
    approval_summary,
};
pub use error::{CoreError, error_chain};
pub use event::{Event, EventKind, NewEvent};
pub use execution::{Execution, ExecutionStatus};
pub use function::{Function, FunctionSpec, validate_name};
pub use ids::{ApprovalId, DeliveryId, ExecutionId, FunctionId, ScheduleId};
pub use item::{
    FileChange, FileChangeKind, Item, ItemBody, ItemStatus, MAX_ITEM_BYTES, MAX_ITEM_ENTRIES,
    MAX_ITEM_ID_BYTES, MAX_ITEM_PATH_BYTES, MAX_ITEM_TEXT_BYTES, MessageRole, NewItem, PlanEntry,
};
pub use log::{LogLine, LogStream, NewLogLine};
pub use notification::{Delivery, DeliveryStatus};
pub use schedule::{MAX_CRON_BYTES, MAX_TIMEZONE_BYTES, Overlap, Schedule, ScheduleSpec};
pub use schema::{InputValidator, check_input_schema};
pub use time_util::{Timestamp, now, start_of_utc_day};
pub use usage::Usage;
