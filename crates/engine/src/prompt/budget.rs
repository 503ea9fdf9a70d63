//! The budget of one render — time, loop iterations, value and output sizes — kept per thread, since tera calls
//! filters and functions with no context of ours; and the writer that holds the rendered prompt to its limit.

use std::cell::RefCell;
use std::io::{self, Write};
use std::time::Instant;

use super::{MAX_LOOP_ITERATIONS, MAX_PROMPT_BYTES, MAX_RENDER_TIME, MAX_VALUE_BYTES};

thread_local! {
    /// The budget of the render running on this thread; set and taken back by [`super::PromptTemplate::render`].
    pub(super) static BUDGET: RefCell<Option<Budget>> = const { RefCell::new(None) };
}

/// What is left to one render, and the limit it ran into, if any.
pub(super) struct Budget {
    deadline: Instant,
    iterations_left: u64,
    /// The sentence to answer when a limit was hit (tera's own error would only say which filter failed).
    pub(super) exceeded: Option<String>,
}

impl Budget {
    pub(super) fn new() -> Self {
        Self {
            deadline: Instant::now() + MAX_RENDER_TIME,
            iterations_left: MAX_LOOP_ITERATIONS,
            exceeded: None,
        }
    }

    /// Runs `check` on this thread's budget; a render outside [`PromptTemplate::render`] has none, and fails.
    fn with(check: impl FnOnce(&mut Budget) -> Result<(), String>) -> tera::Result<()> {
        BUDGET.with(|budget| {
            let mut budget = budget.borrow_mut();
            let Some(budget) = budget.as_mut() else {
                return Err(tera::Error::msg("a prompt is rendered only within its budget"));
            };
            check(budget).map_err(|limit| {
                budget.exceeded.get_or_insert(limit.clone());
                tera::Error::msg(limit)
            })
        })
    }

    pub(super) fn check_time() -> tera::Result<()> {
        Budget::with(|budget| {
            if Instant::now() > budget.deadline {
                return Err(format!(
                    "the prompt took longer than {} ms to render, the limit",
                    MAX_RENDER_TIME.as_millis()
                ));
            }
            Ok(())
        })
    }

    pub(super) fn check_iterations(n_iterations: u64) -> tera::Result<()> {
        Budget::with(|budget| budget.iterations(n_iterations, false))
    }

    pub(super) fn charge_iterations(n_iterations: u64) -> tera::Result<()> {
        Budget::with(|budget| budget.iterations(n_iterations, true))
    }

    fn iterations(&mut self, n_iterations: u64, is_charged: bool) -> Result<(), String> {
        if n_iterations > self.iterations_left {
            return Err(format!(
                "the prompt's loops would run more than {MAX_LOOP_ITERATIONS} times over this input, the limit"
            ));
        }
        if is_charged {
            self.iterations_left -= n_iterations;
        }
        Ok(())
    }

    pub(super) fn check_value_size(size: usize) -> tera::Result<()> {
        Budget::with(|_| {
            if size > MAX_VALUE_BYTES {
                return Err(format!(
                    "the prompt makes a value of about {size} bytes, over the limit of {MAX_VALUE_BYTES} bytes"
                ));
            }
            Ok(())
        })
    }
}

/// The rendered prompt, refusing to grow past [`MAX_PROMPT_BYTES`] and checking the clock at every write.
#[derive(Default)]
pub(super) struct LimitedWriter {
    pub(super) bytes: Vec<u8>,
}

impl Write for LimitedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let over = Budget::with(|_| {
            if self.bytes.len() + buf.len() > MAX_PROMPT_BYTES {
                return Err(format!("the rendered prompt is over the limit of {MAX_PROMPT_BYTES} bytes"));
            }
            Ok(())
        });
        over.and_then(|()| Budget::check_time()).map_err(io::Error::other)?;
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
