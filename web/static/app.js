// Live updates for the server-rendered pages: relative times, the activity feed, the execution status page, and
// small helps for forms. Every page works without this script; it only keeps what is shown current, over the SSE
// streams (live.js), or by polling the JSON API when they cannot be used.
// Data from the server is only ever put in the page as text (textContent), never parsed as HTML, except the
// overview's fragments, which are the server's own escaped rendering of the same page.

import { element, formatDuration, setText, showRelativeTimes, timeElement } from "./dom.js";
import { followInbox } from "./approvals.js";
import { followExecution } from "./execution.js";
import { POLL_INTERVAL_MS, getJson, listen, pollUntilDone } from "./live.js";
import { enhanceTriggerForm } from "./trigger.js";

function start() {
  showRelativeTimes(document);
  setInterval(() => showRelativeTimes(document), 10_000);
  tickRunningDurations(document);
  askBeforeSubmitting(document);
  checkJsonEditors(document);
  offerSelectAll(document);
  for (const form of document.querySelectorAll("[data-trigger-form]")) enhanceTriggerForm(form);
  const feed = document.querySelector("[data-event-feed]");
  if (feed) followEvents(feed);
  const execution = document.querySelector("[data-execution-id]");
  if (execution) followExecution(execution);
  const inbox = document.querySelector("[data-approvals-inbox]");
  if (inbox) followInbox(inbox);
}

/**
 * The durations of running executions in a list keep counting, as the status page's does. The cells are looked up
 * on every tick, since the overview replaces its rows as executions change.
 */
function tickRunningDurations(root) {
  const tick = () => {
    for (const cell of root.querySelectorAll("[data-running-since]")) {
      const since = new Date(cell.dataset.runningSince);
      if (!Number.isNaN(since.getTime())) setText(cell, formatDuration(Date.now() - since));
    }
  };
  if (!root.querySelector("[data-running-since]") && !root.querySelector("[data-event-feed]")) return;
  tick();
  setInterval(tick, 1000);
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

// ---- Forms -------------------------------------------------------------------------------------------------------

/**
 * Textareas with `data-json-editor="ID"` (the function builder's input schema) say at once when their text is not
 * a JSON object, in the element with that id; the server checks again, and says more, when the form is sent.
 */
function checkJsonEditors(root) {
  for (const editor of root.querySelectorAll("textarea[data-json-editor]")) {
    const message = document.getElementById(editor.dataset.jsonEditor);
    if (!message) continue;
    let timer = null;
    const check = () => {
      const problem = jsonObjectProblem(editor.value);
      editor.classList.toggle("invalid", problem !== null);
      editor.setAttribute("aria-invalid", String(problem !== null));
      message.hidden = problem === null;
      message.textContent = problem ?? "";
    };
    editor.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(check, 250);
    });
  }
}

/** Why `text` is not a JSON object, or null when it is (empty text means the default `{"type": "object"}`). */
function jsonObjectProblem(text) {
  if (text.trim() === "") return null;
  try {
    const value = JSON.parse(text);
    if (value === null || typeof value !== "object" || Array.isArray(value)) return "The schema must be a JSON object.";
    return null;
  } catch (error) {
    return `Not valid JSON: ${error.message}`;
  }
}

/** The executions list's "select all" box, shown only when this script runs (it does nothing without it). */
function offerSelectAll(root) {
  const all = root.querySelector("[data-select-all]");
  if (!all) return;
  all.hidden = false;
  const rows = () => [...root.querySelectorAll("[data-select-row]")];
  all.addEventListener("change", () => {
    for (const row of rows()) row.checked = all.checked;
  });
  root.addEventListener("change", (event) => {
    if (!event.target.matches("[data-select-row]")) return;
    const boxes = rows();
    all.checked = boxes.length > 0 && boxes.every((box) => box.checked);
  });
}

// ---- The activity feed (overview and activity pages) -----------------------------------------------------------

function followEvents(feed) {
  let after = Number(feed.dataset.after) || 0;
  const maxItems = Number(feed.dataset.maxItems) || 50;
  const refreshesFragments = feed.hasAttribute("data-refresh-fragments");
  let refreshTimer = null;
  /** Shows the events not shown yet; true when one of them is about an execution. */
  const show = (events) => {
    const fresh = events.filter((event) => !feed.querySelector(`[data-event-id="${Number(event.id)}"]`));
    for (const event of fresh) feed.prepend(eventItem(event));
    for (const event of events) after = Math.max(after, Number(event.id) || 0);
    if (fresh.length === 0) return;
    feed.querySelector("[data-empty]")?.remove();
    while (feed.children.length > maxItems) feed.lastElementChild.remove();
    const isCounted = (event) => event.kind.startsWith("execution.") || event.kind.startsWith("approval.");
    if (refreshesFragments && fresh.some(isCounted)) {
      // A burst of events refreshes the counts once, a moment after it.
      clearTimeout(refreshTimer);
      refreshTimer = setTimeout(refreshFragments, 300);
    }
  };
  const poll = () =>
    pollUntilDone(async () => {
      const answer = await getJson(`/api/events?after=${after}`);
      show(answer.items);
      after = Math.max(after, Number(answer.next_after) || 0);
      return POLL_INTERVAL_MS;
    });
  listen(`/api/events/stream?after=${after}`, { event: (event) => show([event]) }, poll);
}

const DECIDED_TONES = { approved: "succeeded", declined: "failed", expired: "timed_out" };

/**
 * The colour of an event's badge, as the server picks it (pages/view.rs, `event_tone`): the status an execution event
 * reports, `waiting` for an approval asked, the status that reads the same for an approval decided, or the neutral
 * one for changes of functions.
 */
function eventTone(event) {
  const kind = String(event.kind);
  if (kind === "execution.started" || kind === "execution.resumed") return "running";
  if (kind === "approval.requested") return "waiting";
  if (kind === "approval.decided") {
    const status = String(event.data?.status);
    return Object.hasOwn(DECIDED_TONES, status) ? DECIDED_TONES[status] : "function";
  }
  return kind.startsWith("execution.") ? kind.slice("execution.".length) : "function";
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
  item.append(element("span", `badge status-${eventTone(event)}`, event.kind));
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

start();
