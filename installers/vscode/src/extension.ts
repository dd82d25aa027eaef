// Hanlin for VS Code: starts `hanlin-lsp` over stdio and lets VS Code's own
// language client ask it for inline completions (LSP 3.18
// textDocument/inlineCompletion, spoken by vscode-languageclient 10+).
// The server does all the work; this file only starts it (found by
// serverLocator.ts), passes settings, and shows its state in the status bar.

import * as vscode from "vscode";
import {
  ExecuteCommandRequest,
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
  State,
  TransportKind,
} from "vscode-languageclient/node";
import { DEFAULT_COMMAND, describeSearch, locateServer, systemHost } from "./serverLocator";
import { describeStatus, ServerStatus } from "./status";

const SECTION = "hanlin";
// Keys the server reads (lsp_server/config.py); the rest configure this extension.
const SERVER_KEYS = [
  "model",
  "maxTokens",
  "timeBudgetMs",
  "multiline",
  "extraContext",
  "contextLength",
  "threads",
  "kvReuse",
  "responseCache",
  "endpoint",
  "cacheReuse",
  "drafts",
  "persistKv",
  "idleWork",
  "smallWindow",
] as const;

let client: LanguageClient | undefined;
let statusItem: vscode.StatusBarItem;
let output: vscode.LogOutputChannel;

function serverSettings(): Record<string, unknown> {
  const config = vscode.workspace.getConfiguration(SECTION);
  const settings: Record<string, unknown> = {};
  for (const key of SERVER_KEYS) {
    const value = config.get(key);
    if (value !== undefined && value !== null && value !== "") {
      settings[key] = value;
    }
  }
  return settings;
}

function showStatus(status: ServerStatus): void {
  const { text, tooltip } = describeStatus(status);
  statusItem.text = text;
  statusItem.tooltip = tooltip;
  statusItem.show();
}

async function startClient(context: vscode.ExtensionContext): Promise<void> {
  const config = vscode.workspace.getConfiguration(SECTION);
  const args = config.get<string[]>("serverArgs") ?? [];
  const host = systemHost();
  const located = locateServer(config.get<string>("serverCommand"), host);
  if (located === undefined) {
    statusItem.text = "$(error) Hanlin";
    statusItem.tooltip = `${DEFAULT_COMMAND} was not found`;
    statusItem.show();
    void vscode.window.showErrorMessage(
      `Hanlin: could not find \`${DEFAULT_COMMAND}\` (looked in ${describeSearch(host)}). ` +
        "Install Hanlin, or set `hanlin.serverCommand` to the full path of hanlin-lsp.",
    );
    return;
  }
  const command = located.command;
  output.info(`Starting ${command} (found: ${located.source})`);

  const serverOptions: ServerOptions = {
    run: { command, args, transport: TransportKind.stdio },
    debug: { command, args: [...args, "--log-level", "debug"], transport: TransportKind.stdio },
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ scheme: "file" }, { scheme: "untitled" }],
    initializationOptions: serverSettings(),
    // Tell the server when `hanlin.*` changes; it then pulls the section again.
    synchronize: { configurationSection: SECTION },
    outputChannel: output,
  };

  client = new LanguageClient("hanlin", "Hanlin", serverOptions, clientOptions);
  client.onDidChangeState((event) => {
    if (event.newState === State.Stopped) {
      statusItem.text = "$(debug-disconnect) Hanlin";
      statusItem.tooltip = "The Hanlin language server stopped — run “Hanlin: Restart Language Server”";
    }
  });
  statusItem.text = "$(loading~spin) Hanlin: starting";
  statusItem.tooltip = `Starting ${command}`;
  statusItem.show();
  // Before start(): the server sends its first status right after `initialized`.
  context.subscriptions.push(client.onNotification("hanlin/status", showStatus));
  try {
    await client.start();
  } catch (error) {
    statusItem.text = "$(error) Hanlin";
    statusItem.tooltip = `Could not start ${command}`;
    void vscode.window.showErrorMessage(
      `Hanlin: could not start \`${command}\` (${String(error)}). ` +
        "Install Hanlin (`pip install hanlin`) or set `hanlin.serverCommand` to the full path of hanlin-lsp.",
    );
    return;
  }
}

async function stopClient(): Promise<void> {
  if (client) {
    const old = client;
    client = undefined;
    await old.stop();
  }
}

async function showStats(): Promise<void> {
  if (!client || !client.isRunning()) {
    void vscode.window.showWarningMessage("Hanlin: the language server is not running.");
    return;
  }
  const stats = (await client.sendRequest(ExecuteCommandRequest.type, {
    command: "hanlin.stats",
    arguments: [],
  })) as {
    total: { offered: number; shown: number; accepted: number; partially_accepted: number; chars_accepted: number };
    acceptanceRate: number | null;
  };
  const t = stats.total;
  const rate = stats.acceptanceRate === null ? "—" : `${Math.round(stats.acceptanceRate * 100)}%`;
  void vscode.window.showInformationMessage(
    `Hanlin: ${t.offered} suggestions offered, ${t.accepted} accepted, ` +
      `${t.partially_accepted} partly accepted, ${t.chars_accepted} characters (acceptance ${rate}). ` +
      "These statistics stay on this machine.",
  );
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  output = vscode.window.createOutputChannel("Hanlin", { log: true });
  statusItem = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
  statusItem.command = "hanlin.showStats";
  context.subscriptions.push(output, statusItem);

  context.subscriptions.push(
    vscode.commands.registerCommand("hanlin.restartServer", async () => {
      await stopClient();
      await startClient(context);
    }),
    vscode.commands.registerCommand("hanlin.showStats", showStats),
    vscode.commands.registerCommand("hanlin.showLog", () => output.show(true)),
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (
        event.affectsConfiguration(`${SECTION}.serverCommand`) ||
        event.affectsConfiguration(`${SECTION}.serverArgs`)
      ) {
        await stopClient();
        await startClient(context);
      }
    }),
  );
  await startClient(context);
}

export async function deactivate(): Promise<void> {
  await stopClient();
}
