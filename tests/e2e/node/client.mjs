// Drive hanlin-lsp the way VS Code does: with vscode-languageserver-protocol's
// connection (the library vscode-languageclient is built on) over stdio.
//
//   node client.mjs <model.gguf> <server command...>
//
// Prints one JSON object with what it observed; exits non-zero on a protocol error.

import { spawn } from "node:child_process";
import process from "node:process";
import {
  createProtocolConnection,
  StreamMessageReader,
  StreamMessageWriter,
  InitializeRequest,
  InitializedNotification,
  DidOpenTextDocumentNotification,
  DidChangeTextDocumentNotification,
  InlineCompletionRequest,
  InlineCompletionTriggerKind,
  ExecuteCommandRequest,
  ConfigurationRequest,
  WorkDoneProgressCreateRequest,
  ShutdownRequest,
  ExitNotification,
  TextDocumentSyncKind,
} from "vscode-languageserver-protocol/node";

const [modelPath, ...serverCommand] = process.argv.slice(2);
if (!modelPath || serverCommand.length === 0) {
  console.error("usage: node client.mjs <model.gguf> <server command...>");
  process.exit(2);
}

const server = spawn(serverCommand[0], serverCommand.slice(1), {
  stdio: ["pipe", "pipe", "inherit"],
});
const connection = createProtocolConnection(
  new StreamMessageReader(server.stdout),
  new StreamMessageWriter(server.stdin),
);
const observed = { progress: [], status: [], messages: [] };
connection.onRequest(ConfigurationRequest.type, (params) =>
  params.items.map((item) => (item.section === "hanlin" ? { maxTokens: 12 } : null)),
);
connection.onRequest(WorkDoneProgressCreateRequest.type, () => null);
connection.onNotification("$/progress", (params) => observed.progress.push(params.value.kind));
connection.onNotification("hanlin/status", (params) => observed.status.push(params.state));
connection.onNotification("window/showMessage", (params) => observed.messages.push(params));
connection.onNotification("window/logMessage", () => {});
connection.onError(([error]) => {
  console.error("protocol error:", error);
  process.exit(3);
});
connection.listen();

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const uri = "file:///tmp/hanlin-e2e/main.py";

async function main() {
  const init = await connection.sendRequest(InitializeRequest.type, {
    processId: process.pid,
    rootUri: null,
    clientInfo: { name: "vscode-languageserver-protocol e2e" },
    capabilities: {
      workspace: { configuration: true, didChangeConfiguration: { dynamicRegistration: false } },
      window: { workDoneProgress: true },
      textDocument: {
        synchronization: { didSave: true },
        inlineCompletion: { dynamicRegistration: false },
      },
    },
    initializationOptions: { model: modelPath, maxTokens: 12, timeBudgetMs: 30000 },
  });
  await connection.sendNotification(InitializedNotification.type, {});

  const deadline = Date.now() + 180_000;
  let state = "";
  while (Date.now() < deadline) {
    state = (await connection.sendRequest("hanlin/completionStats")).state;
    if (state === "ready" || state === "failed") break;
    await sleep(200);
  }

  await connection.sendNotification(DidOpenTextDocumentNotification.type, {
    textDocument: { uri, languageId: "python", version: 1, text: "def square(x):\n    return " },
  });
  await connection.sendNotification(DidChangeTextDocumentNotification.type, {
    textDocument: { uri, version: 2 },
    contentChanges: [
      { range: { start: { line: 1, character: 11 }, end: { line: 1, character: 11 } }, text: "x" },
    ],
  });
  const result = await connection.sendRequest(InlineCompletionRequest.type, {
    textDocument: { uri },
    position: { line: 1, character: 12 },
    context: { triggerKind: InlineCompletionTriggerKind.Invoked },
  });
  const items = Array.isArray(result) ? result : result?.items ?? [];
  let accepted = null;
  if (items.length > 0 && items[0].command) {
    await connection.sendRequest(ExecuteCommandRequest.type, {
      command: items[0].command.command,
      arguments: items[0].command.arguments,
    });
    accepted = await connection.sendRequest(ExecuteCommandRequest.type, {
      command: "hanlin.stats",
      arguments: [],
    });
  }
  const stats = await connection.sendRequest("hanlin/completionStats");
  await connection.sendRequest(ShutdownRequest.type);
  await connection.sendNotification(ExitNotification.type);
  const code = await new Promise((resolve) => server.on("exit", resolve));

  console.log(
    JSON.stringify({
      capabilities: init.capabilities,
      serverInfo: init.serverInfo,
      syncKindIncremental: init.capabilities.textDocumentSync?.change === TextDocumentSyncKind.Incremental,
      state,
      result,
      items,
      accepted,
      template: stats.template,
      requests: stats.requests,
      observed,
      exitCode: code,
    }),
  );
  connection.dispose();
}

main().catch((error) => {
  console.error(error);
  server.kill();
  process.exit(1);
});
