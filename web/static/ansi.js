// ANSI colour codes in log lines, rendered safely: the text is split at its SGR sequences (ESC [ … m) and each
// piece becomes a <span> with classes, its text set with textContent. Nothing from the log is ever parsed as HTML.
// Understood: 0 (reset), 1 (bold), 22 (not bold), 30–37 and 90–97 (foreground), 39 (default foreground). Other
// SGR codes are dropped, and so are other escape sequences (cursor moves, line clears), which mean nothing here.

const ESCAPE_SEQUENCE = /\x1b\[([0-9;?]*)([A-Za-z])/g;
const COLOUR_NAMES = ["black", "red", "green", "yellow", "blue", "magenta", "cyan", "white"];

/** Whether `text` holds any escape sequence worth parsing. */
export function hasAnsi(text) {
  return text.includes("\x1b[");
}

/** The style after applying one SGR sequence's codes (e.g. "1;31") to `style`. */
function applyCodes(style, codes) {
  const next = { ...style };
  for (const part of (codes === "" ? "0" : codes).split(";")) {
    const code = Number(part);
    if (code === 0) {
      next.isBold = false;
      next.colour = null;
    } else if (code === 1) next.isBold = true;
    else if (code === 22) next.isBold = false;
    else if (code >= 30 && code <= 37) next.colour = COLOUR_NAMES[code - 30];
    else if (code >= 90 && code <= 97) next.colour = `bright-${COLOUR_NAMES[code - 90]}`;
    else if (code === 39) next.colour = null;
  }
  return next;
}

function styledSpan(text, style) {
  const span = document.createElement("span");
  const classes = [];
  if (style.colour) classes.push(`ansi-${style.colour}`);
  if (style.isBold) classes.push("ansi-bold");
  if (classes.length > 0) span.className = classes.join(" ");
  span.textContent = text;
  return span;
}

/** The nodes that show `text` with its colours: plain text nodes and classed spans. */
export function ansiNodes(text) {
  const nodes = [];
  let style = { isBold: false, colour: null };
  let start = 0;
  const push = (piece) => {
    if (piece === "") return;
    nodes.push(style.isBold || style.colour ? styledSpan(piece, style) : document.createTextNode(piece));
  };
  for (const match of text.matchAll(ESCAPE_SEQUENCE)) {
    push(text.slice(start, match.index));
    if (match[2] === "m") style = applyCodes(style, match[1]);
    start = match.index + match[0].length;
  }
  push(text.slice(start));
  return nodes;
}

/** Shows `text` in `node`, coloured where it has ANSI codes. */
export function showAnsiText(node, text) {
  if (hasAnsi(text)) node.replaceChildren(...ansiNodes(text));
  else node.textContent = text;
}
