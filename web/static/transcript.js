// The status page's transcript kept live: each item that arrives (over the log stream's `event: item`, or by
// polling) is upserted by its id — a new one is put in seq order, a changed one replaces its node. The markup is the
// server's (web/templates/transcript.html; change both together), built with textContent only: nothing an agent
// says is ever parsed as HTML.

import { element, timeElement } from "./dom.js";

/** The most items the page holds; past it a "show more" link pages on, as the server's page of 200 does. */
const MAX_ITEMS_ON_PAGE = 1000;
const STATUSES = new Set(["in_progress", "completed", "failed", "declined"]);
const CHANGE_KINDS = new Set(["add", "delete", "update"]);
const OUTCOMES = {
  in_progress: ["running", "running"],
  completed: ["done", "ok"],
  failed: ["failed", "failed"],
  declined: ["declined", "declined"],
};

/**
 * Follows the transcript in `root` (the status page): `upsert(items)` shows items, `pollAfter()` is the cursor to
 * poll items after (null when none can change what is shown), `isFull()` says the page takes no new items. Without a transcript on the page (the log view), an
 * item only reveals the links to it.
 */
export function followTranscript(root, { onApproval = () => {} } = {}) {
  const tabs = root.querySelector("[data-view-tabs]");
  const list = root.querySelector("[data-transcript]");
  if (!list) {
    return {
      upsert: (items) => {
        if (tabs && items.length > 0) tabs.hidden = false;
      },
      pollAfter: () => null,
      isFull: () => true,
    };
  }
  const first = Number(list.dataset.itemsAfter) || 0;
  let last = Number(list.dataset.itemsLast) || first;
  let isCut = list.hasAttribute("data-items-cut");
  const nodes = new Map();
  for (const node of list.querySelectorAll(":scope > [data-item-id]")) nodes.set(node.dataset.itemId, node);

  const showCut = () => {
    isCut = true;
    list.dataset.itemsCut = "";
    const more = root.querySelector("[data-items-more]");
    const link = root.querySelector("[data-items-more-link]");
    if (link) link.href = `?view=transcript&items_after=${last}`;
    if (more) more.hidden = false;
  };
  const insert = (node, seq) => {
    const lastNode = list.lastElementChild;
    if (!lastNode || Number(lastNode.dataset.seq) < seq) {
      list.append(node);
      return;
    }
    const next = [...list.children].find((child) => Number(child.dataset.seq) > seq);
    list.insertBefore(node, next ?? null);
  };
  const upsertOne = (item) => {
    const id = String(item.id ?? "");
    const seq = Number(item.seq) || 0;
    const existing = nodes.get(id);
    if (!existing && (seq <= first || (isCut && seq > last))) return;
    // An approval item changes only its status (its approval decided): one the page shows as it is keeps its card,
    // and with it whatever is being typed in the card's form.
    if (existing && item.kind === "approval" && existing.classList.contains(`item-${item.status}`)) return;
    const node = itemElement(item);
    if (!node) return;
    if (existing) {
      keepFolds(existing, node);
      keepApprovalCard(existing, node);
      existing.replaceWith(node);
    } else if (nodes.size >= MAX_ITEMS_ON_PAGE) {
      showCut();
      return;
    } else {
      insert(node, seq);
      last = Math.max(last, seq);
    }
    nodes.set(id, node);
    if (item.kind === "approval") onApproval(node, item);
  };
  return {
    upsert(items) {
      if (items.length === 0) return;
      if (tabs) tabs.hidden = false;
      for (const item of items) upsertOne(item);
      const empty = root.querySelector("[data-transcript-empty]");
      if (empty && nodes.size > 0) empty.hidden = true;
    },
    pollAfter() {
      // Items change under the same id until they complete, and the items route pages by seq: polling goes back to
      // just before the oldest unfinished item shown, so that its next state is read too.
      const unfinished = [...nodes.values()].filter((node) => node.classList.contains("item-in_progress"));
      if (unfinished.length > 0) return Math.min(...unfinished.map((node) => Number(node.dataset.seq) || 0)) - 1;
      return isCut ? null : last;
    },
    /** Whether the page holds no more new items (a "show more" link leads on). */
    isFull: () => isCut,
  };
}

/** A replaced approval item shows its old card until the approval has been read again. */
function keepApprovalCard(old, fresh) {
  const card = old.querySelector(".approval");
  const body = fresh.querySelector(".item-body");
  if (card && body) body.replaceChildren(card);
}

/** A replaced item keeps what the user folded or unfolded. */
function keepFolds(old, fresh) {
  const before = old.querySelectorAll("details");
  const after = fresh.querySelectorAll("details");
  if (before.length !== after.length) return;
  before.forEach((details, index) => {
    after[index].open = details.open;
  });
}

const text = (value) => (value === null || value === undefined ? "" : String(value));

function label(item) {
  switch (item.kind) {
    case "message":
      return item.role === "user" ? "User" : "Agent";
    case "reasoning":
      return "Reasoning";
    case "command":
      return "Command";
    case "file_change":
      return "Files changed";
    case "tool_call":
      return "Tool call";
    case "web_search":
      return "Web search";
    case "plan":
      return "Plan";
    case "approval":
      return "Approval";
    default:
      return "Error";
  }
}

const APPROVAL_OUTCOMES = {
  in_progress: ["waiting", "waiting"],
  completed: ["approved", "ok"],
  failed: ["failed", "failed"],
  declined: ["declined", "declined"],
};

/**
 * A command's exit code when it has one, else the status in words; for most kinds only when not just completed. An
 * approval item always says where its approval is (pages/transcript.rs, `approval_outcome`).
 */
function outcome(item, status) {
  if (item.kind === "approval") return APPROVAL_OUTCOMES[status];
  if (item.kind === "command" && Number.isInteger(item.exit_code)) {
    return item.exit_code === 0 ? ["exit 0", "ok"] : [`exit ${item.exit_code}`, "failed"];
  }
  const isAlwaysShown = item.kind === "command" || item.kind === "tool_call";
  if (!isAlwaysShown && status === "completed") return null;
  return OUTCOMES[status];
}

function headNodes(item, status) {
  const nodes = [element("span", "item-label", label(item))];
  if (item.kind === "command") nodes.push(element("code", "item-summary", text(item.command)));
  if (item.kind === "tool_call") {
    const name = item.server ? `${text(item.server)} / ${text(item.tool)}` : text(item.tool);
    nodes.push(element("code", "item-summary", name));
  }
  if (item.kind === "plan") {
    const entries = Array.isArray(item.entries) ? item.entries : [];
    const nDone = entries.filter((entry) => entry?.done === true).length;
    nodes.push(element("span", "item-summary muted", `${nDone} of ${entries.length} done`));
  }
  const shown = outcome(item, status);
  if (shown) nodes.push(element("span", `item-outcome outcome-${shown[1]}`, shown[0]));
  nodes.push(timeElement(text(item.ts)));
  return nodes;
}

/** An item as the server renders it (the `item` macro in transcript.html), or null for a kind it does not know. */
export function itemElement(item) {
  if (!["message", "reasoning", "command", "file_change", "tool_call", "web_search", "plan", "approval", "error"].includes(item.kind)) {
    return null;
  }
  const status = STATUSES.has(item.status) ? item.status : "in_progress";
  const role = item.role === "user" ? "user" : "agent";
  const node = element("li", `item item-${item.kind} item-${status}${item.kind === "message" ? ` item-${role}` : ""}`);
  node.dataset.itemId = text(item.id);
  node.dataset.seq = String(Number(item.seq) || 0);
  const body = element("div", "item-body");
  if (item.kind === "command" || item.kind === "tool_call") {
    const details = element("details", "item-fold");
    const summary = element("summary", "item-head");
    summary.append(...headNodes(item, status));
    details.append(summary, body);
    node.append(details);
  } else {
    const head = element("div", "item-head");
    head.append(...headNodes(item, status));
    node.append(head, body);
  }
  fillBody(body, item);
  return node;
}

function fillBody(body, item) {
  switch (item.kind) {
    case "message":
    case "reasoning":
      body.append(element("div", "item-text", text(item.text)));
      break;
    case "web_search":
      body.append(element("div", "item-text", text(item.query)));
      break;
    case "error":
      body.append(element("div", "item-text", text(item.message)));
      break;
    case "approval": {
      const line = element("div", "item-text", "Approval ");
      line.append(element("code", "", text(item.approval_id)));
      body.append(line);
      break;
    }
    case "plan": {
      const list = element("ul", "plan");
      for (const entry of Array.isArray(item.entries) ? item.entries : []) {
        const isDone = entry?.done === true;
        const row = element("li", isDone ? "plan-entry plan-done" : "plan-entry");
        row.append(element("span", "plan-mark", isDone ? "✓" : "○"), element("span", "plan-text", text(entry?.text)));
        list.append(row);
      }
      body.append(list);
      break;
    }
    case "command": {
      if (item.cwd) {
        const cwd = element("p", "item-cwd", "in ");
        cwd.append(element("code", "", text(item.cwd)));
        body.append(cwd);
      }
      body.append(item.output ? element("pre", "item-output", text(item.output)) : element("p", "item-none", "No output."));
      break;
    }
    case "tool_call":
      body.append(element("p", "item-caption", "Arguments"), element("pre", "item-json", prettyJson(item.arguments ?? null)));
      if (item.result !== null && item.result !== undefined) {
        body.append(element("p", "item-caption", "Result"), element("pre", "item-json", prettyJson(item.result)));
      }
      if (item.error) {
        body.append(element("p", "item-caption", "Error"), element("pre", "item-output item-error-text", text(item.error)));
      }
      break;
    case "file_change":
      for (const change of Array.isArray(item.changes) ? item.changes : []) body.append(fileElement(change ?? {}));
      break;
    default:
      break;
  }
}

function prettyJson(value) {
  return JSON.stringify(value, null, 2) ?? "null";
}

/** One changed file with its diff highlighted: a transcript's file change, or one an approval asks about. */
export function fileElement(change) {
  const kind = CHANGE_KINDS.has(change?.kind) ? change.kind : "update";
  const lines = typeof change?.diff === "string" ? diffLines(change.diff, kind) : null;
  const count = (name) => (lines ?? []).filter((line) => line.className === name).length;
  const details = element("details", "file");
  details.open = true;
  const summary = element("summary", "file-head");
  const stat = element("span", "diff-stat");
  stat.append(element("span", "diff-stat-add", `+${count("add")}`), " ", element("span", "diff-stat-del", `−${count("del")}`));
  summary.append(element("span", `file-change file-${kind}`, kind), element("code", "file-path", text(change.path)), stat);
  details.append(summary);
  if (lines && lines.length > 0) {
    const diff = element("div", "diff");
    diff.append(...lines.map((line) => element("div", `diff-line diff-${line.className}`, line.text)));
    details.append(diff);
  } else {
    details.append(element("p", "item-none", "No diff."));
  }
  return details;
}

/**
 * The lines of a diff, each classed as the server classes them (pages/transcript.rs, `diff_lines`): a unified diff
 * line by line, anything else (an added file's content) all added, or all removed for a deleted file.
 */
export function diffLines(diff, kind) {
  const lines = diff.split("\n").map((line) => (line.endsWith("\r") ? line.slice(0, -1) : line));
  if (diff.endsWith("\n") || diff === "") lines.pop();
  const isUnified = lines.some((line) => line.startsWith("@@"));
  let isInHunk = false;
  return lines.map((line) => {
    let className;
    if (!isUnified) className = kind === "delete" ? "del" : "add";
    else if (line.startsWith("@@")) {
      isInHunk = true;
      className = "hunk";
    } else if (!isInHunk || line.startsWith("\\")) className = "meta";
    else if (line.startsWith("+")) className = "add";
    else if (line.startsWith("-")) className = "del";
    else className = "ctx";
    return { className, text: line };
  });
}
