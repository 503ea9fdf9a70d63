// The execution status page kept live: its status, times, output and error, the log tail and the transcript (over
// the SSE stream, or by polling when it cannot be used). Log lines and items are only ever put in the page as text.

import { hasAnsi, showAnsiText } from "./ansi.js";
import { element, formatCount, formatDuration, formatMoney, setText, timeElement } from "./dom.js";
import { POLL_INTERVAL_MS, getJson, listen, pollUntilDone } from "./live.js";
import { approvalItems } from "./approvals.js";
import { followTranscript } from "./transcript.js";

const TERMINAL_STATUSES = new Set(["succeeded", "failed", "timed_out", "cancelled"]);
const LOG_STREAMS = new Set(["stdout", "stderr", "agent", "system"]);
/** The number of log lines the logs endpoint answers with at most by default: a full page means more are waiting. */
const LOG_PAGE_SIZE = 1000;
/** How many items one poll of the items route asks for. */
const ITEM_PAGE_SIZE = 500;

export function followExecution(root) {
  const id = encodeURIComponent(root.dataset.executionId);
  const log = root.querySelector("[data-log]");
  const tail = log ? followLogTail(root, log) : null;
  const transcript = followTranscript(root, { onApproval: approvalItems(root.querySelector("[data-transcript]")) });
  let after = Number(root.dataset.lastSeq) || 0;
  const finish = () => {
    setText(root.querySelector('[data-field="log-state"]'), "finished");
    tail?.finish();
  };
  if (TERMINAL_STATUSES.has(root.dataset.status) && !root.hasAttribute("data-log-cut")) {
    // Finished before the page was made: every line is on it already.
    finish();
    return;
  }
  /** Reads the items that may have changed since the last poll, page by page, as far as the page shows them. */
  const pollItems = async () => {
    let itemsAfter = transcript.pollAfter();
    while (itemsAfter !== null) {
      const answer = await getJson(`/api/executions/${id}/items?after=${itemsAfter}&limit=${ITEM_PAGE_SIZE}`);
      transcript.upsert(answer.items);
      const next = Number(answer.next_after) || 0;
      if (answer.items.length < ITEM_PAGE_SIZE || next <= itemsAfter || transcript.isFull()) return;
      itemsAfter = next;
    }
  };
  const poll = () =>
    pollUntilDone(async () => {
      const logs = await getJson(`/api/executions/${id}/logs?after=${after}`);
      tail?.append(logs.items);
      after = Math.max(after, Number(logs.next_after) || 0);
      await pollItems();
      const execution = await getJson(`/api/executions/${id}`);
      showExecution(root, execution);
      // The logs answer says `finished` only once the execution has ended and no line can follow.
      if (logs.finished && TERMINAL_STATUSES.has(execution.status)) {
        // Items are stored no later than the final status: one more read has the last of them.
        await pollItems();
        finish();
        return null;
      }
      return logs.items.length >= LOG_PAGE_SIZE ? 0 : POLL_INTERVAL_MS;
    });
  listen(
    `/api/executions/${id}/logs/stream?after=${after}`,
    {
      log: (line) => {
        after = Math.max(after, Number(line.seq) || 0);
        tail?.append([line]);
      },
      // Every item again after a (re)connect, then each change: an upsert by id either way.
      item: (item) => transcript.upsert([item]),
      status: (execution) => {
        showExecution(root, execution);
        if (!TERMINAL_STATUSES.has(String(execution.status))) return undefined;
        finish();
        return "done";
      },
    },
    poll,
  );
}

/**
 * The log tail: new lines are added in small batches and followed (scrolled to) while the view is at the bottom.
 * Scrolling up stops following, so that a line can be read while more arrive; scrolling back down, or the
 * "Follow" button, resumes it.
 */
function followLogTail(root, log) {
  const state = root.querySelector('[data-field="log-state"]');
  const button = root.querySelector("[data-follow]");
  let isFollowing = true;
  let isFinished = false;
  let pending = [];
  let flushTimer = null;
  const isAtBottom = () => log.scrollHeight - log.scrollTop - log.clientHeight < 24;
  // Where this script last scrolled to: a view above it was scrolled up by the user, even when the scroll event
  // has not been handled yet (a batch of lines can arrive in between).
  let autoScrollTop = null;
  const hasUserScrolledUp = () => autoScrollTop !== null && log.scrollTop < autoScrollTop - 4;
  const showState = () => {
    if (isFinished) return;
    setText(state, isFollowing ? "following…" : "paused: scroll to the end to follow");
    if (button) button.hidden = isFollowing;
  };
  const scrollToEnd = () => {
    log.scrollTop = log.scrollHeight;
    autoScrollTop = log.scrollTop;
  };
  log.addEventListener("scroll", () => {
    const wasFollowing = isFollowing;
    if (isAtBottom()) {
      isFollowing = true;
      autoScrollTop = log.scrollTop;
    } else if (hasUserScrolledUp()) {
      isFollowing = false;
    }
    if (wasFollowing !== isFollowing) showState();
  });
  button?.addEventListener("click", () => {
    isFollowing = true;
    scrollToEnd();
    showState();
  });
  const flush = () => {
    flushTimer = null;
    const lines = pending;
    pending = [];
    if (lines.length === 0) return;
    log.querySelector("[data-log-empty]")?.remove();
    const rows = document.createDocumentFragment();
    for (const line of lines) rows.append(logLineElement(line));
    if (isFollowing && hasUserScrolledUp()) {
      isFollowing = false;
      showState();
    }
    log.append(rows);
    if (isFollowing) scrollToEnd();
  };
  colourServerLines(log);
  scrollToEnd();
  showState();
  return {
    append(lines) {
      if (lines.length === 0) return;
      pending.push(...lines);
      flushTimer ??= setTimeout(flush, 50);
    },
    finish() {
      flush();
      isFinished = true;
      if (button) button.hidden = true;
    },
  };
}

/** The lines the server rendered with their ANSI codes as plain text get their colours. */
function colourServerLines(log) {
  for (const message of log.querySelectorAll(".log-message")) {
    const text = message.textContent;
    if (hasAnsi(text)) showAnsiText(message, text);
  }
}

/** A log line as the server renders it (see execution.html): its text set as text, never as HTML. */
function logLineElement(line) {
  const stream = LOG_STREAMS.has(line.stream) ? line.stream : "stdout";
  const row = element("div", `log-line log-${stream}`);
  row.title = line.ts;
  row.append(
    element("span", "log-seq", String(line.seq)),
    element("span", "log-stream", stream),
    messageElement(String(line.message ?? "")),
  );
  return row;
}

function messageElement(text) {
  const message = element("span", "log-message");
  showAnsiText(message, text);
  return message;
}

/** Shows `value` as indented JSON in the `name` section, or hides the section when there is none. */
function showJson(root, name, value) {
  const section = root.querySelector(`[data-field="${name}"]`);
  if (!section) return;
  section.hidden = value === null || value === undefined;
  if (!section.hidden) setText(root.querySelector(`[data-field="${name}-text"]`), JSON.stringify(value, null, 2));
}

/** The token figures of the usage shape, in the order and with the labels the server shows them. */
const USAGE_FIGURES = [
  ["input_tokens", "Input tokens"],
  ["cached_input_tokens", "Cached input"],
  ["cache_write_tokens", "Cache writes"],
  ["output_tokens", "Output tokens"],
  ["reasoning_tokens", "Reasoning"],
  ["total_tokens", "Total tokens"],
];

/**
 * Shows the usage as the server does (pages/usage_view.rs): its tokens by kind, the model, the cost, or — tokens
 * without a cost — why there is no price; and the stored JSON.
 */
function showUsage(root, usage) {
  showJson(root, "usage", usage);
  const figures = root.querySelector('[data-field="usage-figures"]');
  if (!figures || !usage || typeof usage !== "object") return;
  const isCount = (value) => Number.isInteger(value) && value >= 0;
  const rows = USAGE_FIGURES.filter(([name]) => isCount(usage[name])).map(([name, label]) => [label, formatCount(usage[name])]);
  const hasTokens = rows.length > 0;
  const model = typeof usage.model === "string" ? usage.model : null;
  const cost = Number.isFinite(usage.cost_usd) && usage.cost_usd >= 0 ? usage.cost_usd : null;
  const nodes = rows.flatMap(([label, value]) => [element("dt", "", label), element("dd", "", value)]);
  if (model !== null) nodes.push(element("dt", "", "Model"), element("dd", "mono", model));
  if (cost !== null) nodes.push(element("dt", "", "Cost"), element("dd", "usage-cost", formatMoney(cost)));
  figures.replaceChildren(...nodes);
  const noPrice = root.querySelector('[data-field="usage-no-price"]');
  if (noPrice) {
    noPrice.hidden = cost !== null || !hasTokens;
    const why = model !== null ? `no price for model ${model}` : "no price: the model is not known";
    setText(root.querySelector('[data-field="usage-no-price-text"]'), noPrice.hidden ? "" : why);
  }
}

/** Shows the instance that runs the execution once it has one (a queued execution has none yet). */
function showInstance(root, instance) {
  const cell = root.querySelector('[data-field="instance"]');
  const label = root.querySelector('[data-field="instance-label"]');
  if (!cell || !label || typeof instance !== "string" || instance === "") return;
  cell.hidden = label.hidden = false;
  setText(cell, instance);
}

/** Puts a time in a `<dd>`, or "not yet". */
function showTime(root, name, iso) {
  const cell = root.querySelector(`[data-field="${name}"]`);
  if (!cell || cell.querySelector("time")?.getAttribute("datetime") === iso) return;
  cell.replaceChildren(iso ? timeElement(iso) : element("span", "muted", "not yet"));
}

/** Marks the steps of the status timeline the execution has reached, with their times. */
function showTimeline(root, execution, isTerminal) {
  const step = (name) => root.querySelector(`[data-step="${name}"]`);
  step("running")?.classList.toggle("reached", Boolean(execution.started_at));
  const isWaiting = execution.status === "waiting";
  const runningDot = root.querySelector('[data-field="timeline-running-dot"]');
  if (runningDot) runningDot.className = `timeline-dot dot-${isWaiting ? "waiting" : "running"}`;
  setText(root.querySelector('[data-field="timeline-running-name"]'), isWaiting ? "waiting for approval" : "running");
  step("end")?.classList.toggle("reached", isTerminal);
  const status = String(execution.status);
  const dot = root.querySelector('[data-field="timeline-end-dot"]');
  if (dot) dot.className = `timeline-dot dot-${isTerminal ? status : "queued"}`;
  setText(root.querySelector('[data-field="timeline-end-name"]'), isTerminal ? status.replace("_", " ") : "finished");
  for (const [field, iso] of [["timeline-started", execution.started_at], ["timeline-finished", execution.finished_at]]) {
    const cell = root.querySelector(`[data-field="${field}"]`);
    if (cell && iso && cell.querySelector("time")?.getAttribute("datetime") !== iso) cell.replaceChildren(timeElement(iso));
  }
}

function showExecution(root, execution) {
  const status = String(execution.status);
  const isTerminal = TERMINAL_STATUSES.has(status);
  root.dataset.status = status;
  const badge = root.querySelector("[data-status-badge]");
  if (badge) {
    badge.className = `badge status-${status}`;
    setText(badge, status.replace("_", " "));
  }
  const cancel = root.querySelector('[data-action="cancel"]');
  if (cancel) cancel.hidden = isTerminal;
  const retry = root.querySelector('[data-action="retry"]');
  if (retry) retry.hidden = !isTerminal;

  const errorBox = root.querySelector('[data-field="error"]');
  if (errorBox) {
    errorBox.hidden = !execution.error;
    setText(root.querySelector('[data-field="error-text"]'), execution.error || "");
  }
  showJson(root, "output", execution.output);
  showUsage(root, execution.usage);
  showTimeline(root, execution, isTerminal);
  showTime(root, "started_at", execution.started_at);
  showTime(root, "finished_at", execution.finished_at);
  showInstance(root, execution.instance);
  if (execution.started_at) {
    const end = execution.finished_at ? new Date(execution.finished_at) : new Date();
    const duration = root.querySelector('[data-field="duration"]');
    if (duration) duration.replaceChildren(formatDuration(end - new Date(execution.started_at)));
  }
}
