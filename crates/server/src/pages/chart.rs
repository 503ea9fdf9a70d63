//! The overview's two small charts, drawn as SVG by the server (no chart library, no script): executions per hour
//! by status over the last 24 hours, and how long the finished ones took.
//!
//! The numbers come from the newest executions, read a page at a time and never more than [`MAX_EXECUTIONS`], so the
//! overview stays quick on a busy server; the chart says when it was cut.

use dashboard_core::{Execution, ExecutionStatus, Timestamp};
use dashboard_engine::StoreReader;
use dashboard_store::{ExecutionQuery, StoreError};
use serde::Serialize;

/// The most executions the charts read.
pub(super) const MAX_EXECUTIONS: usize = 5_000;
const PAGE: usize = 500;
const HOURS: usize = 24;

/// The drawing area of the hourly chart, in SVG units (the SVG scales to its box).
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 160.0;
const LEFT: f64 = 32.0;
const BOTTOM: f64 = 20.0;

/// The executions created in the 24 hours before `now`, newest first, at most [`MAX_EXECUTIONS`]; and whether
/// there were more than that.
pub(super) async fn recent_executions(
    store: &StoreReader,
    now: Timestamp,
) -> Result<(Vec<Execution>, bool), StoreError> {
    let since = now - time::Duration::hours(HOURS as i64);
    let mut executions = Vec::new();
    let mut query = ExecutionQuery { limit: PAGE, ..Default::default() };
    loop {
        let page = store.list_executions(&query).await?;
        let n_items = page.items.len();
        let is_older_reached = page.items.last().is_none_or(|oldest| oldest.created_at < since);
        executions.extend(page.items.into_iter().filter(|execution| execution.created_at >= since));
        if executions.len() >= MAX_EXECUTIONS {
            executions.truncate(MAX_EXECUTIONS);
            return Ok((executions, true));
        }
        match page.next_cursor {
            Some(cursor) if n_items >= PAGE && !is_older_reached => query.before = Some(cursor),
            _ => return Ok((executions, false)),
        }
    }
}

/// One coloured piece of a bar.
#[derive(Debug, Serialize)]
struct Segment {
    status: ExecutionStatus,
    y: f64,
    height: f64,
}

/// One hour's bar.
#[derive(Debug, Serialize)]
struct Bar {
    x: f64,
    width: f64,
    /// "14:00 — 3 executions: 2 succeeded, 1 failed", the bar's tooltip.
    title: String,
    segments: Vec<Segment>,
}

/// A label on an axis.
#[derive(Debug, Serialize)]
struct Tick {
    x: f64,
    y: f64,
    text: String,
}

/// The executions-per-hour chart, ready to draw.
#[derive(Debug, Serialize)]
pub(super) struct HourlyChart {
    width: f64,
    height: f64,
    baseline: f64,
    left: f64,
    bars: Vec<Bar>,
    x_ticks: Vec<Tick>,
    y_ticks: Vec<Tick>,
    total: usize,
}

/// Executions per hour by status, the last bar being the current hour.
pub(super) fn hourly(executions: &[Execution], now: Timestamp) -> HourlyChart {
    let mut counts = vec![[0usize; ExecutionStatus::ALL.len()]; HOURS];
    let current_hour =
        now.replace_minute(0).and_then(|t| t.replace_second(0)).and_then(|t| t.replace_nanosecond(0));
    let current_hour = current_hour.unwrap_or(now);
    for execution in executions {
        // Seconds from the execution to the start of the current hour: zero or less means within the current hour.
        let seconds_before = (current_hour - execution.created_at).whole_seconds();
        let index = match usize::try_from(seconds_before - 1) {
            Err(_) => Some(HOURS - 1),
            Ok(seconds) => (HOURS - 2).checked_sub(seconds / 3600),
        };
        let bucket = index.and_then(|index| counts.get_mut(index));
        if let (Some(bucket), Some(status)) = (bucket, status_index(execution.status)) {
            bucket[status] += 1;
        }
    }
    let max = counts.iter().map(|bucket| bucket.iter().sum::<usize>()).max().unwrap_or(0).max(1);
    let scale = nice_ceiling(max);
    let plot_height = HEIGHT - BOTTOM - 8.0;
    let slot = (WIDTH - LEFT) / HOURS as f64;
    let bars = counts
        .iter()
        .enumerate()
        .map(|(index, bucket)| {
            let start = current_hour - time::Duration::hours((HOURS - 1 - index) as i64);
            let mut y = HEIGHT - BOTTOM;
            let mut segments = Vec::new();
            let mut parts = Vec::new();
            for (status, count) in
                ExecutionStatus::ALL.into_iter().zip(bucket).filter(|(_, count)| **count > 0)
            {
                let height = plot_height * (*count as f64) / (scale as f64);
                y -= height;
                segments.push(Segment { status, y: round(y), height: round(height) });
                parts.push(format!("{count} {}", status.as_str().replace('_', " ")));
            }
            let total: usize = bucket.iter().sum();
            let mut title = format!(
                "{:02}:00 UTC — {total} execution{}",
                start.hour(),
                if total == 1 { "" } else { "s" }
            );
            if !parts.is_empty() {
                title = format!("{title}: {}", parts.join(", "));
            }
            Bar { x: round(LEFT + slot * index as f64 + 1.0), width: round(slot - 2.0), title, segments }
        })
        .collect();
    let x_ticks = (0..HOURS)
        .step_by(6)
        .chain([HOURS - 1])
        .map(|index| {
            let start = current_hour - time::Duration::hours((HOURS - 1 - index) as i64);
            Tick {
                x: round(LEFT + slot * (index as f64 + 0.5)),
                y: HEIGHT - 4.0,
                text: format!("{:02}:00", start.hour()),
            }
        })
        .collect();
    let y_ticks = [0, scale / 2, scale]
        .into_iter()
        .map(|value| Tick {
            x: LEFT - 6.0,
            y: round(HEIGHT - BOTTOM - plot_height * value as f64 / scale as f64 + 4.0),
            text: value.to_string(),
        })
        .collect();
    HourlyChart {
        width: WIDTH,
        height: HEIGHT,
        baseline: HEIGHT - BOTTOM,
        left: LEFT,
        bars,
        x_ticks,
        y_ticks,
        total: executions.len(),
    }
}

/// The x where the durations chart's bars start, for the template.
pub(super) fn duration_bar_x() -> f64 {
    DURATION_BAR_X
}

fn status_index(status: ExecutionStatus) -> Option<usize> {
    ExecutionStatus::ALL.iter().position(|candidate| *candidate == status)
}

/// The smallest of 1, 2, 5 × 10ⁿ that is at least `value`: the top of the scale.
fn nice_ceiling(value: usize) -> usize {
    let mut step = 1;
    loop {
        for factor in [1, 2, 5] {
            if step * factor >= value {
                return step * factor;
            }
        }
        step *= 10;
    }
}

fn round(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// One bucket of the durations chart: a row of a horizontal bar chart 400 units wide.
#[derive(Debug, Serialize)]
pub(super) struct DurationBucket {
    label: &'static str,
    count: usize,
    y: f64,
    bar_width: f64,
}

/// Where the bars of the durations chart start, and how long the longest is.
const DURATION_BAR_X: f64 = 96.0;
const DURATION_BAR_MAX: f64 = 260.0;
/// The height of one row of the durations chart.
pub(super) const DURATION_ROW: f64 = 24.0;

/// How long the finished executions took, in five buckets from "under 1 s" to "10 min or more".
pub(super) fn durations(executions: &[Execution]) -> Vec<DurationBucket> {
    const BUCKETS: [(&str, i64); 5] =
        [("< 1 s", 1), ("1–10 s", 10), ("10 s – 1 min", 60), ("1–10 min", 600), ("≥ 10 min", i64::MAX)];
    let mut counts = [0usize; BUCKETS.len()];
    for execution in executions.iter().filter(|execution| execution.status.is_terminal()) {
        let Some(duration) = execution.finished_at.zip(execution.started_at).map(|(end, start)| end - start)
        else {
            continue;
        };
        let seconds = duration.whole_seconds();
        if let Some(index) = BUCKETS.iter().position(|(_, limit)| seconds < *limit) {
            counts[index] += 1;
        }
    }
    let max = counts.iter().copied().max().unwrap_or(0).max(1);
    BUCKETS
        .iter()
        .zip(counts)
        .enumerate()
        .map(|(row, ((label, _), count))| DurationBucket {
            label,
            count,
            y: DURATION_ROW * row as f64,
            bar_width: round(DURATION_BAR_MAX * count as f64 / max as f64),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_end_on_round_numbers() {
        for (value, expected) in [(1, 1), (3, 5), (7, 10), (11, 20), (49, 50), (120, 200)] {
            assert_eq!(nice_ceiling(value), expected, "{value}");
        }
    }

    #[test]
    fn an_empty_day_draws_empty_bars() {
        let chart = hourly(&[], dashboard_core::now());
        assert_eq!(chart.bars.len(), HOURS);
        assert!(chart.bars.iter().all(|bar| bar.segments.is_empty()));
        assert_eq!(durations(&[]).iter().map(|bucket| bucket.count).sum::<usize>(), 0);
    }
}
