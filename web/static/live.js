// Live updates from the server: an EventSource on the SSE routes, and polling of the JSON API as the fallback when
// EventSource is missing or its stream cannot be opened (an old proxy, a server without the routes, a full server).

export const POLL_INTERVAL_MS = 2000;

/** `?live=poll` in a page's URL makes it poll instead of streaming: to try the fallback, and for the tests. */
const IS_POLLING_FORCED = new URLSearchParams(window.location.search).get("live") === "poll";

/** Says on the page how it is kept live (`data-live` on <html>: "stream" or "polling"), for people and tests. */
function showTransport(name) {
  document.documentElement.dataset.live = name;
}

export async function getJson(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
  if (!response.ok) throw new Error(`${url} answered ${response.status}`);
  return response.json();
}

/**
 * Calls `poll` now and again after the delay it returns (in ms), until it returns null. A failed poll (the server
 * restarting, the network gone) is tried again after the usual interval; a hidden tab is not polled.
 */
export function pollUntilDone(poll) {
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

/**
 * Listens to the SSE stream at `url`, calling `handlers[name](data)` for each message of that event name (the data
 * parsed as JSON). A handler that returns `"done"` closes the stream. When the stream cannot be opened (the first
 * connection fails) or the browser gives up on it, `fallback()` is called once, and polling takes over from there;
 * a dropped stream that the browser reconnects by itself (with Last-Event-ID) needs nothing from us.
 */
export function listen(url, handlers, fallback) {
  const poll = () => {
    showTransport("polling");
    fallback();
  };
  if (IS_POLLING_FORCED || typeof window.EventSource !== "function") {
    poll();
    return;
  }
  const source = new EventSource(url);
  source.addEventListener("open", () => showTransport("stream"));
  let isFinished = false;
  const finish = () => {
    isFinished = true;
    source.close();
  };
  for (const [name, handle] of Object.entries(handlers)) {
    source.addEventListener(name, (message) => {
      let data;
      try {
        data = JSON.parse(message.data);
      } catch (error) {
        console.debug("an SSE message that is not JSON", error);
        return;
      }
      if (handle(data) === "done") finish();
    });
  }
  source.addEventListener("error", () => {
    if (isFinished || source.readyState !== EventSource.CLOSED) return;
    finish();
    poll();
  });
}
