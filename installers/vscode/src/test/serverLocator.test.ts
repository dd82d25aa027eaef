// Unit tests of serverLocator.ts with node's own test runner (`npm test`): real
// temporary folders with real executable files, and the real `python3` lookup done by
// a small shell script standing in for an interpreter on the PATH.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { test } from "node:test";

import {
  bundleCandidates,
  locateServer,
  LocatorHost,
  pathCandidates,
  systemHost,
} from "../serverLocator";

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "hanlin-locator-"));
}

function executable(file: string, body = "#!/bin/sh\nexit 0\n"): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, body, { mode: 0o755 });
  return file;
}

function host(home: string, env: NodeJS.ProcessEnv): LocatorHost {
  // the real filesystem and processes, with this test's HOME and environment
  const real = systemHost();
  return {
    ...real,
    home,
    env,
    run(command: string, args: string[]): string | undefined {
      const dirs = (env.PATH ?? "").split(":");
      const found = dirs.map((d) => path.join(d, command)).find((f) => real.isExecutable(f));
      return found === undefined ? undefined : real.run(found, args);
    },
  };
}

test("a changed setting wins, as given", () => {
  const h = host(tempDir(), { PATH: "" });
  assert.deepEqual(locateServer("/opt/custom/hanlin-lsp", h), {
    command: "/opt/custom/hanlin-lsp",
    source: "setting",
  });
});

test("the default setting looks on the PATH first", () => {
  const home = tempDir();
  const bin = path.join(home, "bin");
  const onPath = executable(path.join(bin, "hanlin-lsp"));
  executable(path.join(home, ".local", "opt", "hanlin", "hanlin-lsp"));
  const h = host(home, { PATH: `/nonexistent:${bin}` });
  assert.deepEqual(locateServer("hanlin-lsp", h), { command: onPath, source: "path" });
  assert.deepEqual(locateServer(undefined, h), { command: onPath, source: "path" });
});

test("then where install.sh puts the bundle", () => {
  const home = tempDir();
  const installed = executable(path.join(home, ".local", "opt", "hanlin", "hanlin-lsp"));
  const h = host(home, { PATH: "/nonexistent" });
  assert.deepEqual(locateServer("", h), { command: installed, source: "bundle" });
});

test("a file that is not executable is not a server", () => {
  const home = tempDir();
  const file = path.join(home, ".local", "opt", "hanlin", "hanlin-lsp");
  executable(file);
  fs.chmodSync(file, 0o644);
  assert.equal(locateServer("", host(home, { PATH: "/nonexistent" })), undefined);
});

test("then the scripts folder of the Python on the PATH", () => {
  const home = tempDir();
  const scripts = path.join(home, "venv", "bin");
  const server = executable(path.join(scripts, "hanlin-lsp"));
  const bin = path.join(home, "bin");
  // an interpreter that answers the sysconfig query like a real one
  executable(path.join(bin, "python3"), `#!/bin/sh\necho "${scripts}"\necho "${home}/.local/bin"\n`);
  const h = host(home, { PATH: bin });
  assert.deepEqual(locateServer("hanlin-lsp", h), { command: server, source: "python" });
});

test("nothing found: undefined", () => {
  assert.equal(locateServer("hanlin-lsp", host(tempDir(), { PATH: "/nonexistent" })), undefined);
});

test("install locations on each platform", () => {
  assert.deepEqual(
    bundleCandidates("win32", { LOCALAPPDATA: "C:\\Users\\me\\AppData\\Local", ProgramFiles: "C:\\Program Files" }, "C:\\Users\\me"),
    [
      "C:\\Users\\me\\AppData\\Local\\Programs\\Hanlin\\hanlin-lsp.exe",
      "C:\\Program Files\\Hanlin\\hanlin-lsp.exe",
    ],
  );
  assert.deepEqual(bundleCandidates("darwin", {}, "/Users/me"), [
    "/Applications/Hanlin.app/Contents/MacOS/hanlin-lsp",
    "/Users/me/Applications/Hanlin.app/Contents/MacOS/hanlin-lsp",
  ]);
  assert.deepEqual(bundleCandidates("linux", {}, "/home/me").slice(0, 3), [
    "/home/me/.local/opt/hanlin/hanlin-lsp",
    "/home/me/.local/bin/hanlin-lsp",
    "/opt/hanlin/hanlin-lsp",
  ]);
});

test("Windows PATH: case-insensitive name, PATHEXT extensions", () => {
  assert.deepEqual(pathCandidates("win32", { Path: "C:\\a;C:\\b", PATHEXT: ".EXE;.CMD" }), [
    "C:\\a\\hanlin-lsp.exe",
    "C:\\a\\hanlin-lsp.cmd",
    "C:\\b\\hanlin-lsp.exe",
    "C:\\b\\hanlin-lsp.cmd",
  ]);
});
