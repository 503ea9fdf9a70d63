// Live updates for the server-rendered pages: relative times, the activity feed, and the execution status page.
// Every page works without this script; it only keeps what is shown current by polling the JSON API.
// Data from the server is only ever put in the page as text (textContent), never parsed as HTML, except the
// overview's fragments, which are the server's own escaped rendering of the same page.

const POLL_INTERVAL_MS = 2000;
const TERMINAL_STATUSES = new Set(["succeeded", "failed", "timed_out", "cancelled"]);
const LOG_STREAMS = new Set(["stdout", "stderr", "agent", "system"]);
/** The number of log lines the logs endpoint answers with at most by default: a full page means more are waiting. */
const LOG_PAGE_SIZE = 1000;

function start() {
  showRelativeTimes(document);
  setInterval(() => showRelativeTimes(document), 10_000);
  askBeforeSubmitting(document);
  const feed = document.querySelector("[data-event-feed]");
  if (feed) followEvents(feed);
  const execution = document.querySelector("[data-execution-id]");
  if (execution) followExecution(execution);
}

// ---- Small helpers -------------------------------------------------------------------------------------------

/** A new element with a class and, optionally, text. */
function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

async function getJson(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
  if (!response.ok) throw new Error(`${url} answered ${response.status}`);
  return response.json();
}

/**
 * Calls `poll` now and again after the delay it returns (in ms), until it returns null. A failed poll (the server
 * restarting, the network gone) is tried again after the usual interval; a hidden tab is not polled.
 */
function pollUntilDone(poll) {
  async function tick() {
    let delay = POLL_INTERVAL_MS;
    if (!document.hidden) {
      try {
        delay = await poll();
      } catch (error) {
        console.debug("poll failed; trying again", error);
        delay = POLL_INTERVAL_MS;
      }
    }
    if (delay !== null) setTimeout(tick, delay);
  }
  tick();
}

// ---- Times -------------------------------------------------------------------------------------------------

/** "just now", "3 s ago", "5 min ago", "2 h ago", "4 d ago", or the date for anything older than a month. */
function relativeTime(date, now) {
  const seconds = Math.floor((now - date) / 1000);
  if (seconds < 1) return "just now";
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  if (seconds < 30 * 86400) return `${Math.floor(seconds / 86400)} d ago`;
  return date.toISOString().slice(0, 10);
}

function showRelativeTimes(root) {
  const now = Date.now();
  for (const time of root.querySelectorAll("time[datetime]")) {
    const date = new Date(time.getAttribute("datetime"));
    if (!Number.isNaN(date.getTime())) time.textContent = relativeTime(date, now);
  }
}

/** A <time> element for an RFC 3339 timestamp, showing the relative time, with the exact one as its tooltip. */
function timeElement(iso) {
  const time = element("time");
  time.setAttribute("datetime", iso);
  const date = new Date(iso);
  time.title = Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
  time.textContent = Number.isNaN(date.getTime()) ? iso : relativeTime(date, Date.now());
  return time;
}

/** The same wording as the server: "850 ms", "12.3 s", "4 min 05 s", "2 h 07 min". */
function formatDuration(millis) {
  const ms = Math.max(0, Math.floor(millis));
  const secs = Math.floor(ms / 1000);
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${secs}.${Math.floor((ms % 1000) / 100)} s`;
  if (ms < 3_600_000) return `${Math.floor(secs / 60)} min ${String(secs % 60).padStart(2, "0")} s`;
  return `${Math.floor(secs / 3600)} h ${String(Math.floor((secs % 3600) / 60)).padStart(2, "0")} min`;
}

// ---- Confirmations -----------------------------------------------------------------------------------------

/** Forms with `data-confirm` (deleting a function) ask first. */
function askBeforeSubmitting(root) {
  for (const form of root.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
}

// ---- The activity feed (overview and activity pages) -----------------------------------------------------------

function followEvents(feed) {
  let after = Number(feed.dataset.after) || 0;
  const maxItems = Number(feed.dataset.maxItems) || 50;
  const refreshesFragments = feed.hasAttribute("data-refresh-fragments");
  pollUntilDone(async () => {
    const answer = await getJson(`/api/events?after=${after}`);
    const fresh = answer.items.filter((event) => !feed.querySelector(`[data-event-id="${Number(event.id)}"]`));
    for (const event of fresh) feed.prepend(eventItem(event));
    if (fresh.length > 0) {
      feed.querySelector("[data-empty]")?.remove();
      while (feed.children.length > maxItems) feed.lastElementChild.remove();
      if (refreshesFragments && fresh.some((event) => event.kind.startsWith("execution."))) {
        await refreshFragments();
      }
    }
    after = Math.max(after, Number(answer.next_after) || 0);
    return POLL_INTERVAL_MS;
  });
}

/** The colour of an event's badge: the status it reports, or the neutral one for changes of functions. */
function eventTone(kind) {
  if (!kind.startsWith("execution.")) return "function";
  const status = kind.slice("execution.".length);
  return status === "started" ? "running" : status;
}

function eventLink(event) {
  if (event.execution_id) return `/executions/${encodeURIComponent(event.execution_id)}`;
  if (event.function && event.kind !== "function.deleted") return `/functions/${encodeURIComponent(event.function)}`;
  return null;
}

/** An event as the server renders it in the feed (see the `event` macro in macros.html). */
function eventItem(event) {
  const item = element("li", "event event-new");
  item.dataset.eventId = String(event.id);
  item.append(element("span", `badge status-${eventTone(event.kind)}`, event.kind));
  const message = element("span", "event-message");
  const href = eventLink(event);
  if (href) {
    const link = element("a", "", event.message);
    link.href = href;
    message.append(link);
  } else {
    message.textContent = event.message;
  }
  item.append(message, timeElement(event.ts));
  return item;
}

let isRefreshing = false;

/** Re-reads the page and swaps in its `data-fragment` parts (the overview's counts and recent executions). */
async function refreshFragments() {
  if (isRefreshing) return;
  isRefreshing = true;
  try {
    const response = await fetch(window.location.href, { headers: { Accept: "text/html" }, cache: "no-store" });
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    const replacements = new Map([...fresh.querySelectorAll("[data-fragment]")].map((node) => [node.dataset.fragment, node]));
    for (const current of document.querySelectorAll("[data-fragment]")) {
      const replacement = replacements.get(current.dataset.fragment);
      if (!replacement) continue;
      const adopted = document.importNode(replacement, true);
      current.replaceWith(adopted);
      showRelativeTimes(adopted);
    }
  } finally {
    isRefreshing = false;
  }
}

// ---- The execution status page -----------------------------------------------------------------------------------

function followExecution(root) {
  const id = encodeURIComponent(root.dataset.executionId);
  const log = root.querySelector("[data-log]");
  let after = Number(root.dataset.lastSeq) || 0;
  pollUntilDone(async () => {
    const logs = await getJson(`/api/executions/${id}/logs?after=${after}`);
    appendLogLines(log, logs.items);
    after = Math.max(after, Number(logs.next_after) || 0);
    const execution = await getJson(`/api/executions/${id}`);
    showExecution(root, execution);
    // The logs answer says `finished` only once the execution has ended and no line can follow.
    if (logs.finished && TERMINAL_STATUSES.has(execution.status)) {
      setText(root.querySelector('[data-field="log-state"]'), "finished");
      return null;
    }
    return logs.items.length >= LOG_PAGE_SIZE ? 0 : POLL_INTERVAL_MS;
  });
}

/** A log line as the server renders it (see execution.html): its text set as text, never as HTML. */
function logLineElement(line) {
  const stream = LOG_STREAMS.has(line.stream) ? line.stream : "stdout";
  const row = element("div", `log-line log-${stream}`);
  row.title = line.ts;
  row.append(
    element("span", "log-seq", String(line.seq)),
    element("span", "log-stream", stream),
    element("span", "log-message", line.message),
  );
  return row;
}

function appendLogLines(log, lines) {
  if (!log || lines.length === 0) return;
  const isAtBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 24;
  log.querySelector("[data-log-empty]")?.remove();
  const rows = document.createDocumentFragment();
  for (const line of lines) rows.append(logLineElement(line));
  log.append(rows);
  if (isAtBottom) log.scrollTop = log.scrollHeight;
}

function setText(node, text) {
  if (node && node.textContent !== text) node.textContent = text;
}

/** Shows `value` as indented JSON in the `name` section, or hides the section when there is none. */
function showJson(root, name, value) {
  const section = root.querySelector(`[data-field="${name}"]`);
  if (!section) return;
  section.hidden = value === null || value === undefined;
  if (!section.hidden) setText(root.querySelector(`[data-field="${name}-text"]`), JSON.stringify(value, null, 2));
}

/** Puts a time in a `<dd>`, or "not yet". */
function showTime(root, name, iso) {
  const cell = root.querySelector(`[data-field="${name}"]`);
  if (!cell || cell.querySelector("time")?.getAttribute("datetime") === iso) return;
  cell.replaceChildren(iso ? timeElement(iso) : element("span", "muted", "not yet"));
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
  showJson(root, "usage", execution.usage);
  showTime(root, "started_at", execution.started_at);
  showTime(root, "finished_at", execution.finished_at);
  if (execution.started_at) {
    const end = execution.finished_at ? new Date(execution.finished_at) : new Date();
    const duration = root.querySelector('[data-field="duration"]');
    if (duration) duration.replaceChildren(formatDuration(end - new Date(execution.started_at)));
  }
}

start();
