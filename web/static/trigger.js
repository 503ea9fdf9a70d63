// The generated trigger form: switching to "Raw JSON" fills the textarea with the input the fields describe, and
// switching back to "Form" fills the fields from the JSON, so that the user can go on from either. Without this
// script both modes still work (the server reads whichever one is chosen); the stylesheet alone shows the chosen one.

/** The JSON value of one generated field (see `schema_field` in macros.html), or undefined when left empty. */
function fieldValue(control) {
  const kind = control.dataset.kind;
  const text = control.value;
  if (kind === "boolean") return control.checked;
  if (kind === "enum") {
    const option = control.selectedOptions[0];
    if (!option || option.value === "") return undefined;
    try {
      return JSON.parse(option.dataset.json);
    } catch {
      return option.value;
    }
  }
  if (text.trim() === "") return undefined;
  if (kind === "integer" || kind === "number") {
    const number = Number(text);
    return Number.isNaN(number) ? text : number;
  }
  if (kind === "array") return text.split("\n").map((item) => item.trim()).filter((item) => item !== "");
  if (kind === "json") {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  return text;
}

/** The input object the generated fields describe: `input.repo.url` becomes `{"repo": {"url": …}}`. */
function inputFromFields(form) {
  const input = {};
  for (const control of form.querySelectorAll(".fields-mode [data-kind]")) {
    const value = fieldValue(control);
    if (value === undefined) continue;
    const path = control.name.split(".").slice(1);
    let target = input;
    for (const key of path.slice(0, -1)) {
      target[key] ??= {};
      target = target[key];
    }
    target[path[path.length - 1]] = value;
  }
  return input;
}

/** Shows `value` in one generated field; a value the field cannot show (a wrong type) leaves it as it is. */
function setFieldValue(control, value) {
  const kind = control.dataset.kind;
  if (kind === "boolean") {
    control.checked = value === true;
  } else if (kind === "enum") {
    const wanted = JSON.stringify(value);
    const option = [...control.options].find((candidate) => candidate.dataset.json === wanted);
    control.value = option ? option.value : "";
  } else if (value === undefined || value === null) {
    control.value = "";
  } else if (kind === "array" && Array.isArray(value)) {
    control.value = value.map(String).join("\n");
  } else if (kind === "json") {
    control.value = JSON.stringify(value, null, 2);
  } else if (typeof value !== "object") {
    control.value = String(value);
  }
}

/** Fills the generated fields from an input object, the inverse of `inputFromFields`. */
function fillFields(form, input) {
  for (const control of form.querySelectorAll(".fields-mode [data-kind]")) {
    let value = input;
    for (const key of control.name.split(".").slice(1)) {
      value = value !== null && typeof value === "object" ? value[key] : undefined;
    }
    setFieldValue(control, value);
  }
}

export function enhanceTriggerForm(form) {
  const toJson = form.querySelector("#mode-json");
  const textarea = form.querySelector('textarea[name="input"]');
  if (!toJson || !textarea) return;
  // Raw JSON the user has edited (or sent, and got back with an error) is kept; it is replaced only while it is
  // still what the page or this script put there.
  let isEditedByHand = toJson.checked;
  textarea.addEventListener("input", () => {
    isEditedByHand = true;
  });
  toJson.addEventListener("change", () => {
    if (!toJson.checked || isEditedByHand) return;
    textarea.value = JSON.stringify(inputFromFields(form), null, 2);
  });
  const toFields = form.querySelector("#mode-fields");
  toFields?.addEventListener("change", () => {
    if (!toFields.checked) return;
    let input;
    try {
      input = JSON.parse(textarea.value);
    } catch {
      return; // Not JSON (yet): the fields keep what they had, and the JSON stays for when Raw JSON is chosen again.
    }
    if (input === null || typeof input !== "object" || Array.isArray(input)) return;
    fillFields(form, input);
    isEditedByHand = false;
  });
}
