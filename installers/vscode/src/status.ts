// What the status bar item says for each `hanlin/status` notification of the server.
// Kept apart from extension.ts (which needs the `vscode` module) so that node's own
// test runner can check it (src/test/status.test.ts).

// `hanlin/status` (lsp_server/server.py `status_params`): sent in every state, and with
// `reason: "time"` when the time budget left a request empty (null once one answers).
export interface ServerStatus {
  state: "idle" | "loading" | "ready" | "failed";
  model: string | null;
  template: string | null;
  message: string | null;
  hint?: string | null;
  reason?: string | null;
}

/** The status bar item's text and tooltip for a `hanlin/status` notification. */
export function describeStatus(status: ServerStatus): { text: string; tooltip: string } {
  const name = status.model ?? "no model";
  const detail = (fallback: string): string =>
    [status.message ?? fallback, status.hint ? `— ${status.hint}` : ""].filter((s) => s).join(" ");
  switch (status.state) {
    case "loading":
      return { text: `$(loading~spin) Hanlin: loading ${name}`, tooltip: detail("Loading the completion model") };
    case "ready":
      if (status.reason === "time") {
        return { text: "$(watch) Hanlin", tooltip: detail("The last completion ran out of its time budget") };
      }
      return {
        text: "$(sparkle) Hanlin",
        tooltip: `Hanlin: ${name}${status.template ? ` (${status.template})` : ""} — click for statistics`,
      };
    case "failed":
      return { text: "$(error) Hanlin", tooltip: detail("The completion model failed to load") };
    default:
      return {
        text: "$(circle-slash) Hanlin: no model",
        tooltip: detail("No completion model configured — set `hanlin.model`, or choose one in the Hanlin app"),
      };
  }
}
