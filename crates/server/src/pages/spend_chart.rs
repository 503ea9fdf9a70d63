//! The overview's spend chart, drawn as SVG by the server like the others (no chart library, no script): what each
//! function's executions cost per UTC day over the last [`DAYS`] days, from the store's `daily_spend`, and the day's
//! total.

use dashboard_core::Timestamp;
use dashboard_store::DailySpend;
use serde::Serialize;

use super::usage_view::{count_text, money_text};

/// How many days the chart shows, today the last.
pub(super) const DAYS: usize = 14;
/// How many functions get a colour of their own; the rest share one, as "other functions".
const COLOURS: usize = 7;

/// The drawing area, in SVG units (the SVG scales to its box, which spans the page: wider than the hourly chart's,
/// so that its labels come out the same size).
const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 160.0;
const LEFT: f64 = 52.0;
const BOTTOM: f64 = 20.0;

/// The start of the first day the chart shows, for the store's query.
pub(super) fn since(now: Timestamp) -> Timestamp {
    let today = dashboard_core::start_of_utc_day(now);
    today.checked_sub(time::Duration::days(DAYS as i64 - 1)).unwrap_or(today)
}

/// One function's piece of a day's bar.
#[derive(Debug, Serialize)]
struct Segment {
    colour: usize,
    y: f64,
    height: f64,
}

/// One day's bar.
#[derive(Debug, Serialize)]
struct Bar {
    x: f64,
    width: f64,
    /// "2026-12-04 — $0.42: triage $0.30, digest $0.12", the bar's tooltip.
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

/// A function (or the rest of them) in the legend, with what it cost over the days shown.
#[derive(Debug, Serialize)]
struct LegendEntry {
    /// The function's name; `None` for the functions that share the last colour.
    function: Option<String>,
    colour: usize,
    cost: String,
}

/// The spend chart, ready to draw.
#[derive(Debug, Serialize)]
pub(super) struct SpendChart {
    width: f64,
    height: f64,
    baseline: f64,
    left: f64,
    bars: Vec<Bar>,
    x_ticks: Vec<Tick>,
    y_ticks: Vec<Tick>,
    legend: Vec<LegendEntry>,
    /// Whether any execution of the days shown has a cost; the page says so instead of drawing an empty chart.
    has_cost: bool,
    /// What today cost and the tokens it used.
    today_cost: String,
    today_tokens: String,
    /// What the days shown cost and the tokens they used.
    total_cost: String,
    total_tokens: String,
}

/// The chart of `spend` (the store's `daily_spend` since [`since`]`(now)`).
pub(super) fn daily(spend: &[DailySpend], now: Timestamp) -> SpendChart {
    let today = now.to_offset(time::UtcOffset::UTC).date();
    let days: Vec<String> = (0..DAYS)
        .rev()
        .map(|back| day_key(today.checked_sub(time::Duration::days(back as i64)).unwrap_or(today)))
        .collect();
    // Each function's cost over the days shown: the costliest get a colour of their own.
    let mut functions: Vec<(&str, f64)> = Vec::new();
    for entry in spend.iter().filter(|entry| days.contains(&entry.day)) {
        match functions.iter_mut().find(|(name, _)| *name == entry.function) {
            Some((_, cost)) => *cost += entry.spend.cost_usd,
            None => functions.push((&entry.function, entry.spend.cost_usd)),
        }
    }
    functions.retain(|(_, cost)| *cost > 0.0);
    functions.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let colour_of = |function: &str| {
        functions.iter().position(|(name, _)| *name == function).map_or(COLOURS, |index| index.min(COLOURS))
    };

    // costs[day][colour]
    let mut costs = vec![[0.0f64; COLOURS + 1]; DAYS];
    let (mut total_cost, mut total_tokens) = (0.0, 0u64);
    let mut parts: Vec<Vec<String>> = vec![Vec::new(); DAYS];
    for entry in spend {
        let Some(day) = days.iter().position(|day| *day == entry.day) else { continue };
        total_cost += entry.spend.cost_usd;
        total_tokens = total_tokens.saturating_add(entry.spend.tokens);
        if entry.spend.cost_usd > 0.0 {
            costs[day][colour_of(&entry.function)] += entry.spend.cost_usd;
            parts[day].push(format!("{} {}", entry.function, money_text(entry.spend.cost_usd)));
        }
    }
    let today_index = DAYS - 1;
    let today_cost: f64 = costs[today_index].iter().sum();
    let today_tokens: u64 = spend
        .iter()
        .filter(|entry| entry.day == days[today_index])
        .fold(0u64, |sum, entry| sum.saturating_add(entry.spend.tokens));

    let max = costs.iter().map(|day| day.iter().sum::<f64>()).fold(0.0, f64::max);
    let scale = nice_ceiling(max);
    let plot_height = HEIGHT - BOTTOM - 8.0;
    let slot = (WIDTH - LEFT) / DAYS as f64;
    let bars = costs
        .iter()
        .zip(&parts)
        .zip(&days)
        .enumerate()
        .map(|(index, ((day_costs, day_parts), day))| {
            let mut y = HEIGHT - BOTTOM;
            let mut segments = Vec::new();
            for (colour, cost) in day_costs.iter().enumerate().filter(|(_, cost)| **cost > 0.0) {
                let height = plot_height * cost / scale;
                y -= height;
                segments.push(Segment { colour, y: round(y), height: round(height) });
            }
            let mut title = format!("{day} UTC — {}", money_text(day_costs.iter().sum()));
            if !day_parts.is_empty() {
                title = format!("{title}: {}", day_parts.join(", "));
            }
            Bar { x: round(LEFT + slot * index as f64 + 1.0), width: round(slot - 2.0), title, segments }
        })
        .collect();
    // Every other day, counting back from today, so that today is always named.
    let x_ticks = (0..DAYS)
        .rev()
        .step_by(2)
        .map(|index| Tick {
            x: round(LEFT + slot * (index as f64 + 0.5)),
            y: HEIGHT - 4.0,
            text: days[index].get(5..).unwrap_or(&days[index]).to_owned(),
        })
        .collect();
    let y_ticks = [0.0, scale / 2.0, scale]
        .into_iter()
        .map(|value| Tick {
            x: LEFT - 6.0,
            y: round(HEIGHT - BOTTOM - plot_height * value / scale + 4.0),
            text: money_text(value),
        })
        .collect();
    let mut legend: Vec<LegendEntry> = functions
        .iter()
        .take(COLOURS)
        .enumerate()
        .map(|(colour, (function, cost))| LegendEntry {
            function: Some((*function).to_owned()),
            colour,
            cost: money_text(*cost),
        })
        .collect();
    let others: f64 = functions.iter().skip(COLOURS).map(|(_, cost)| cost).sum();
    if functions.len() > COLOURS {
        legend.push(LegendEntry { function: None, colour: COLOURS, cost: money_text(others) });
    }
    SpendChart {
        width: WIDTH,
        height: HEIGHT,
        baseline: HEIGHT - BOTTOM,
        left: LEFT,
        bars,
        x_ticks,
        y_ticks,
        legend,
        has_cost: !functions.is_empty(),
        today_cost: money_text(today_cost),
        today_tokens: count_text(today_tokens),
        total_cost: money_text(total_cost),
        total_tokens: count_text(total_tokens),
    }
}

/// A day as the store names it: `YYYY-MM-DD`.
fn day_key(day: time::Date) -> String {
    format!("{:04}-{:02}-{:02}", day.year(), u8::from(day.month()), day.day())
}

/// The smallest of 1, 2, 5 × 10ⁿ dollars (n may be negative) that is at least `value`: the top of the scale; a
/// cent when nothing was spent.
fn nice_ceiling(value: f64) -> f64 {
    if !(value.is_finite() && value > 0.0) {
        return 0.01;
    }
    let mut step = 10f64.powi(value.log10().floor() as i32 - 1);
    loop {
        for factor in [1.0, 2.0, 5.0] {
            // A little slack, so that 0.3 (which is 0.30000000000000004 as a sum) stays under 0.5, not 1.
            if step * factor >= value * (1.0 - 1e-9) {
                return step * factor;
            }
        }
        step *= 10.0;
    }
}

fn round(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use dashboard_store::Spend;

    use super::*;

    fn entry(day: &str, function: &str, cost_usd: f64, tokens: u64) -> DailySpend {
        DailySpend {
            day: day.to_owned(),
            function: function.to_owned(),
            spend: Spend { cost_usd, tokens, executions: 1 },
        }
    }

    fn noon(day: &str) -> Timestamp {
        let date = time::Date::parse(day, time::macros::format_description!("[year]-[month]-[day]"))
            .expect("a date");
        date.with_hms(12, 0, 0).expect("noon").assume_utc()
    }

    #[test]
    fn scales_end_on_round_amounts() {
        for (value, expected) in
            [(0.0, 0.01), (0.3, 0.5), (0.1 * 3.0, 0.5), (0.0003, 0.0005), (7.0, 10.0), (11.0, 20.0)]
        {
            assert!((nice_ceiling(value) - expected).abs() < 1e-12, "{value}: {}", nice_ceiling(value));
        }
    }

    #[test]
    fn days_are_stacked_by_function_with_todays_total() {
        let now = noon("2026-12-04");
        assert_eq!(day_key(since(now).date()), "2026-11-21");
        let spend = [
            entry("2026-11-20", "triage", 9.0, 1),
            entry("2026-12-03", "digest", 0.1, 10),
            entry("2026-12-04", "digest", 0.2, 20),
            entry("2026-12-04", "triage", 0.3, 30),
            entry("2026-12-04", "free", 0.0, 40),
        ];
        let chart = daily(&spend, now);
        assert!(chart.has_cost);
        assert_eq!(chart.bars.len(), DAYS);
        assert_eq!((chart.today_cost.as_str(), chart.today_tokens.as_str()), ("$0.50", "90"));
        assert_eq!(chart.total_cost, "$0.60", "the day before the chart is left out");
        let today = chart.bars.last().expect("today's bar");
        assert_eq!(today.segments.len(), 2);
        assert!(
            today.title.contains("digest $0.20") && today.title.contains("triage $0.30"),
            "{}",
            today.title
        );
        let legend: Vec<_> =
            chart.legend.iter().map(|entry| (entry.function.as_deref(), entry.cost.as_str())).collect();
        assert_eq!(legend, [(Some("digest"), "$0.30"), (Some("triage"), "$0.30")]);
        assert_eq!(chart.x_ticks.first().map(|tick| tick.text.as_str()), Some("12-04"));
    }

    #[test]
    fn tokens_without_cost_are_no_chart() {
        let now = noon("2026-12-04");
        let chart = daily(&[entry("2026-12-04", "free", 0.0, 40)], now);
        assert!(!chart.has_cost);
        assert_eq!(chart.total_tokens, "40");
    }

    #[test]
    fn functions_past_the_colours_share_one() {
        let now = noon("2026-12-04");
        let spend: Vec<_> =
            (0..10).map(|n| entry("2026-12-04", &format!("f{n}"), 1.0 + n as f64, 1)).collect();
        let chart = daily(&spend, now);
        assert_eq!(chart.legend.len(), COLOURS + 1);
        assert_eq!(
            chart.legend.last().map(|entry| (entry.function.is_none(), entry.cost.as_str())),
            Some((true, "$6.00"))
        );
        assert_eq!(chart.bars.last().map(|bar| bar.segments.len()), Some(COLOURS + 1));
    }
}
