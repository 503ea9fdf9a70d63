// Approvals kept live. On the status page, an approval item that arrives or changes (over the log stream) gets its
// card from `GET /api/approvals/{id}`: what the agent asks, and the Approve / Decline form while it is pending. The
// inbox (/approvals) follows the activity stream and reloads its lists when an approval is asked or decided, keeping
// the cards (and what was typed in them) of approvals that did not change. The card is the server's markup (the
// `card` macro in web/templates/approval.html; change both together), built with textContent only.

import { element, showRelativeTimes, timeElement } from "./dom.js";
import { fileElement } from "./transcript.js";
import { POLL_INTERVAL_MS, getJson, listen, pollUntilDone } from "./live.js";

const KIND_LABELS = { command: "Command", file_change: "File change", permission: "Permission", question: "Question" };
const TONES = { pending: "waiting", approved: "succeeded", declined: "failed", expired: "timed_out" };
/** As pages/approval_view.rs: how many questions, options and files a card shows at most. */
const MAX_QUESTIONS = 64;
const MAX_OPTIONS = 64;
const MAX_FILES = 200;

const text = (value) => (value === null || value === undefined ? "" : String(value));

// ---- The status page ---------------------------------------------------------------------------------------

/**
 * The hook the transcript calls for each approval item it shows (`node`, the item): the item's body gets the
 * approval's card, read from the API. `transcript` is the `[data-transcript]` list, which says whether the caller may
 * decide and carries the CSRF token the forms need.
 */
export function approvalItems(transcript) {
  const mayDecide = transcript?.hasAttribute("data-may-decide") ?? false;
  const csrf = transcript?.dataset.csrfToken ?? "";
  const asked = new Map();
  return async (node, item) => {
    const id = text(item.approval_id);
    if (!id) return;
    // Only the newest read of an approval is shown, whatever order the answers come in.
    const ticket = (asked.get(id) ?? 0) + 1;
    asked.set(id, ticket);
    let approval;
    try {
      approval = await getJson(`/api/approvals/${encodeURIComponent(id)}`);
    } catch (error) {
      console.debug("the approval could not be read", error);
      return;
    }
    if (asked.get(id) !== ticket || !node.isConnected) return;
    const body = node.querySelector(".item-body");
    if (!body) return;
    body.replaceChildren(approvalCard(approval, { csrf, mayDecide, from: "execution" }));
  };
}

// ---- The card ----------------------------------------------------------------------------------------------

function caption(words) {
  return element("span", "approval-caption", words);
}

function timeOf(iso) {
  return iso ? timeElement(text(iso)) : element("span", "muted", "—");
}

/** The command of a command approval: its text, or its argv joined by spaces. */
function commandText(details) {
  const command = details?.command;
  if (typeof command === "string") return command;
  if (Array.isArray(command)) return command.map((arg) => (typeof arg === "string" ? arg : JSON.stringify(arg))).join(" ");
  return null;
}

function questionsOf(approval) {
  const questions = Array.isArray(approval.details?.questions) ? approval.details.questions.slice(0, MAX_QUESTIONS) : [];
  return questions.map((question, index) => {
    const id = typeof question?.id === "string" || typeof question?.id === "number" ? String(question.id) : String(index);
    const options = (Array.isArray(question?.options) ? question.options.slice(0, MAX_OPTIONS) : [])
      .map((option) => {
        if (typeof option === "string") return { label: option, description: null };
        if (option && typeof option === "object" && typeof option.label === "string") {
          return { label: option.label, description: typeof option.description === "string" ? option.description : null };
        }
        return null;
      })
      .filter(Boolean);
    const flag = (names) => names.some((name) => question?.[name] === true);
    const answered = approval.answers?.[id];
    return {
      id,
      field: `answer.${id}`,
      header: typeof question?.header === "string" ? question.header : null,
      question: typeof question?.question === "string" ? question.question : id,
      options,
      isMultiple: flag(["multiSelect", "multi_select"]),
      hasFreeText: options.length === 0 || flag(["isOther", "is_other"]),
      answers: Array.isArray(answered) ? answered.filter((answer) => typeof answer === "string") : [],
    };
  });
}

function questionHead(question, tag, className) {
  const head = element(tag, className);
  if (question.header) head.append(element("strong", "", question.header), " ");
  head.append(question.question);
  return head;
}

function hidden(name, value) {
  const input = element("input");
  input.type = "hidden";
  input.name = name;
  input.value = value;
  return input;
}

function button(decision, className, words) {
  const node = element("button", className, words);
  node.type = "submit";
  node.name = "decision";
  node.value = decision;
  return node;
}

function decisionForm(approval, questions, { csrf, from }) {
  const form = element("form", "approval-form");
  form.method = "post";
  form.action = `/approvals/${encodeURIComponent(text(approval.id))}`;
  form.append(hidden("csrf_token", csrf), hidden("from", from));
  for (const question of questions) {
    const fieldset = element("fieldset", "approval-question");
    fieldset.append(questionHead(question, "legend", ""));
    for (const option of question.options) {
      const label = element("label", "approval-option");
      const input = element("input");
      input.type = question.isMultiple ? "checkbox" : "radio";
      input.name = question.field;
      input.value = option.label;
      if (!question.isMultiple && !question.hasFreeText) input.required = true;
      label.append(input, ` ${option.label}`);
      if (option.description) label.append(" ", element("span", "hint", option.description));
      fieldset.append(label);
    }
    if (question.hasFreeText) {
      const label = element("label", "approval-option approval-other", question.options.length > 0 ? "Other " : "Answer ");
      const input = element("input");
      input.name = question.field;
      input.maxLength = 4000;
      input.autocomplete = "off";
      label.append(input);
      fieldset.append(label);
    }
    form.append(fieldset);
  }
  const note = element("label", "approval-note-field", "Note ");
  const noteInput = element("input");
  noteInput.name = "note";
  noteInput.maxLength = 2000;
  noteInput.autocomplete = "off";
  note.append(element("span", "hint", "optional; the agent is told"), " ", noteInput);
  const actions = element("div", "approval-actions");
  actions.append(button("approve", "button primary", "Approve"));
  if (approval.kind !== "question") {
    const session = button("approve_for_session", "button", "Approve for session");
    session.title = "Approve, and the same request again in this session needs no asking";
    actions.append(session);
  }
  const decline = button("decline", "button danger", "Decline");
  decline.formNoValidate = true;
  actions.append(decline);
  form.append(note, actions);
  return form;
}

/** An approval as the server renders it (the `card` macro in approval.html). */
export function approvalCard(approval, { csrf = "", mayDecide = false, from = "inbox", showContext = false } = {}) {
  const status = Object.hasOwn(TONES, approval.status) ? approval.status : "pending";
  const isPending = status === "pending";
  const details = approval.details && typeof approval.details === "object" ? approval.details : {};
  const card = element("article", `approval approval-${status}`);
  card.id = `approval-${text(approval.id)}`;
  card.dataset.approvalId = text(approval.id);
  card.dataset.approvalStatus = status;

  const head = element("div", "approval-head");
  head.append(
    element("span", `badge status-${TONES[status]}`, `${status}${approval.for_session ? " for the session" : ""}`),
    element("span", "approval-kind", KIND_LABELS[approval.kind] ?? "Request"),
    element("span", "approval-summary", text(approval.summary)),
  );
  card.append(head);
  if (showContext) {
    const context = element("p", "approval-context");
    const fn = element("a", "", text(approval.function));
    fn.href = `/functions/${encodeURIComponent(text(approval.function))}`;
    const execution = element("a", "mono", text(approval.execution_id).slice(-8));
    execution.href = `/executions/${encodeURIComponent(text(approval.execution_id))}`;
    context.append(fn, " · execution ", execution, ` · ${text(approval.backend)}`);
    card.append(context);
  }
  if (typeof details.reason === "string" && details.reason) {
    const reason = element("p", "approval-reason");
    reason.append(caption("Why"), ` ${details.reason}`);
    card.append(reason);
  }
  const command = commandText(details);
  if (command !== null) card.append(element("pre", "item-output approval-command", command));
  if (typeof details.cwd === "string" && details.cwd) {
    const cwd = element("p", "item-cwd", "in ");
    cwd.append(element("code", "", details.cwd));
    card.append(cwd);
  }
  const changes = Array.isArray(details.changes) ? details.changes.slice(0, MAX_FILES) : [];
  for (const change of changes.filter((change) => typeof change?.path === "string")) card.append(fileElement(change));
  if (details.permissions !== undefined) {
    card.append(element("p", "approval-caption", "Permissions"), element("pre", "item-json", JSON.stringify(details.permissions, null, 2)));
  }
  const questions = questionsOf(approval);
  const isDecidable = isPending && mayDecide;
  if (!isDecidable) {
    for (const question of questions) {
      const block = element("div", "approval-question");
      block.append(questionHead(question, "p", "approval-question-text"));
      if (question.answers.length > 0) block.append(element("p", "approval-answers", `Answered: ${question.answers.join(", ")}`));
      else if (question.options.length > 0) {
        block.append(element("p", "approval-answers muted", `Options: ${question.options.map((option) => option.label).join(", ")}`));
      }
      card.append(block);
    }
  }
  const times = element("p", "approval-times", "Asked ");
  times.append(timeOf(approval.requested_at));
  if (isPending) {
    times.append(" · expires ", timeOf(approval.expires_at));
  } else {
    times.append(` · ${status}${approval.decided_by ? ` by ${approval.decided_by}` : ""}`);
    if (approval.decided_at) times.append(" ", timeOf(approval.decided_at));
  }
  card.append(times);
  if (approval.note) {
    const note = element("p", "approval-note");
    note.append(caption("Note"), ` ${text(approval.note)}`);
    card.append(note);
  }
  if (isDecidable) card.append(decisionForm(approval, questions, { csrf, from }));
  const raw = element("details", "approval-raw");
  raw.append(element("summary", "", "Details as the agent sent them"), element("pre", "item-json", JSON.stringify(approval.details ?? null, null, 2)));
  card.append(raw);
  return card;
}

// ---- The inbox ---------------------------------------------------------------------------------------------

/**
 * Follows the activity stream from the event the page was made at, and reloads the lists when an approval is asked
 * or decided (a burst reloads once).
 */
export function followInbox(root) {
  let after = Number(root.dataset.after) || 0;
  let timer = null;
  const seen = (events) => {
    for (const event of events) after = Math.max(after, Number(event.id) || 0);
    if (!events.some((event) => String(event.kind).startsWith("approval."))) return;
    clearTimeout(timer);
    timer = setTimeout(() => reloadInbox(root), 250);
  };
  const poll = () =>
    pollUntilDone(async () => {
      const answer = await getJson(`/api/events?after=${after}`);
      seen(answer.items);
      after = Math.max(after, Number(answer.next_after) || 0);
      return POLL_INTERVAL_MS;
    });
  listen(`/api/events/stream?after=${after}`, { event: (event) => seen([event]) }, poll);
}

let isReloading = false;

/**
 * Reads the inbox again and puts its lists in place: a pending card whose approval did not change stays as it is
 * (with any note or answer being typed), the others come from the fresh page.
 */
async function reloadInbox(root) {
  if (isReloading) return;
  isReloading = true;
  try {
    const url = new URL(window.location.href);
    url.searchParams.delete("decided");
    const response = await fetch(url, { headers: { Accept: "text/html" }, cache: "no-store" });
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const current of document.querySelectorAll("[data-fragment]")) {
      const replacement = fresh.querySelector(`[data-fragment="${CSS.escape(current.dataset.fragment)}"]`);
      if (!replacement) continue;
      if (current.hasAttribute("data-approval-list")) {
        mergeCards(current, replacement);
      } else {
        const adopted = document.importNode(replacement, true);
        current.replaceWith(adopted);
        showRelativeTimes(adopted);
      }
    }
  } catch (error) {
    console.debug("the inbox could not be reloaded", error);
  } finally {
    isReloading = false;
  }
}

function mergeCards(current, replacement) {
  const kept = new Map(
    [...current.querySelectorAll(":scope > [data-approval-id]")].map((card) => [
      `${card.dataset.approvalId} ${card.dataset.approvalStatus}`,
      card,
    ]),
  );
  const children = [...replacement.childNodes].map((node) => {
    const key = node.dataset ? `${node.dataset.approvalId} ${node.dataset.approvalStatus}` : null;
    if (key && kept.has(key)) return kept.get(key);
    const adopted = document.importNode(node, true);
    if (adopted.nodeType === Node.ELEMENT_NODE) showRelativeTimes(adopted);
    return adopted;
  });
  current.replaceChildren(...children);
}
