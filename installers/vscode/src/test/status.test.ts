// Unit tests of status.ts: every state of `hanlin/status` gets a text and a tooltip that
// say what is going on and what to do (no "starting" forever).

import assert from "node:assert/strict";
import { test } from "node:test";

import { describeStatus } from "../status";

const base = { model: null, template: null, message: null, hint: null, reason: null };

test("no model: says so and how to set one", () => {
  const shown = describeStatus({
    ...base,
    state: "idle",
    message: "No completion model configured",
    hint: "set `model` in the editor's Hanlin settings (VS Code: `hanlin.model`)",
  });
  assert.match(shown.text, /no model/);
  assert.match(shown.tooltip, /No completion model configured — set `model`/);
});

test("loading, ready and failed", () => {
  assert.match(describeStatus({ ...base, state: "loading", model: "smollm2" }).text, /loading smollm2/);
  const ready = describeStatus({ ...base, state: "ready", model: "smollm2", template: "prefix-only" });
  assert.equal(ready.text, "$(sparkle) Hanlin");
  assert.match(ready.tooltip, /smollm2 \(prefix-only\)/);
  const failed = describeStatus({
    ...base,
    state: "failed",
    message: "No such model",
    hint: "run `hanlin models list`",
  });
  assert.match(failed.text, /error/);
  assert.equal(failed.tooltip, "No such model — run `hanlin models list`");
});

test("a request the time budget left empty shows in the tooltip", () => {
  const shown = describeStatus({
    ...base,
    state: "ready",
    model: "smollm2",
    reason: "time",
    message: "The last completion ran out of its 1500 ms time budget",
    hint: "raise `timeBudgetMs`",
  });
  assert.match(shown.text, /watch/);
  assert.match(shown.tooltip, /1500 ms time budget — raise `timeBudgetMs`/);
});
