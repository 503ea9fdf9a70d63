// Small DOM and time helpers shared by the page scripts.

/** A new element with a class and, optionally, text. */
export function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// ---- Times -------------------------------------------------------------------------------------------------

/**
 * "just now", "3 s ago", "5 min ago", "2 h ago", "4 d ago", or the date for anything older than a month; a time to
 * come (when an approval expires) reads "in 59 min".
 */
export function relativeTime(date, now) {
  const seconds = Math.floor((now - date) / 1000);
  if (seconds <= -60) {
    const ahead = -seconds;
    if (ahead < 3600) return `in ${Math.floor(ahead / 60)} min`;
    if (ahead < 86400) return `in ${Math.floor(ahead / 3600)} h`;
    if (ahead < 30 * 86400) return `in ${Math.floor(ahead / 86400)} d`;
    return date.toISOString().slice(0, 10);
  }
  if (seconds < 1) return "just now";
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  if (seconds < 30 * 86400) return `${Math.floor(seconds / 86400)} d ago`;
  return date.toISOString().slice(0, 10);
}

export function showRelativeTimes(root) {
  const now = Date.now();
  for (const time of root.querySelectorAll("time[datetime]")) {
    const date = new Date(time.getAttribute("datetime"));
    if (!Number.isNaN(date.getTime())) time.textContent = relativeTime(date, now);
  }
}

/** A <time> element for an RFC 3339 timestamp, showing the relative time, with the exact one as its tooltip. */
export function timeElement(iso) {
  const time = element("time");
  time.setAttribute("datetime", iso);
  const date = new Date(iso);
  time.title = Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
  time.textContent = Number.isNaN(date.getTime()) ? iso : relativeTime(date, Date.now());
  return time;
}

/**
 * US dollars, the same wording as the server (pages/usage_view.rs): "$12.30" from a dollar up, up to four decimals
 * below it ("$0.30", "$0.0125"), "< $0.0001" for a cost too small to show.
 */
export function formatMoney(usd) {
  if (!Number.isFinite(usd) || usd <= 0) return "$0.00";
  if (usd < 0.00005) return "< $0.0001";
  if (usd >= 1) return `$${usd.toFixed(2)}`;
  let text = usd.toFixed(4);
  while (text.endsWith("0") && text.length > "0.00".length) text = text.slice(0, -1);
  return `$${text}`;
}

/** A count with thousands separated, as the server writes it: "12,345". */
export function formatCount(count) {
  return String(count).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** The same wording as the server: "850 ms", "12.3 s", "4 min 05 s", "2 h 07 min". */
export function formatDuration(millis) {
  const ms = Math.max(0, Math.floor(millis));
  const secs = Math.floor(ms / 1000);
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${secs}.${Math.floor((ms % 1000) / 100)} s`;
  if (ms < 3_600_000) return `${Math.floor(secs / 60)} min ${String(secs % 60).padStart(2, "0")} s`;
  return `${Math.floor(secs / 3600)} h ${String(Math.floor((secs % 3600) / 60)).padStart(2, "0")} min`;
}

export function setText(node, text) {
  if (node && node.textContent !== text) node.textContent = text;
}
