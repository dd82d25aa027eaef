// Where is `hanlin-lsp`? The extension finds it without the user setting a path:
//
// 1. the `hanlin.serverCommand` setting, when the user changed it (a name or a path);
// 2. `hanlin-lsp` on the PATH VS Code was started with;
// 3. the places Hanlin's installers put it (a VS Code started from a menu often
//    lacks ~/.local/bin on its PATH; the Windows installer's PATH entry is optional);
// 4. the scripts folders of the Python interpreters on the PATH (`pip install hanlin`
//    puts it there, or in the user scheme's folder, e.g. ~/.local/bin).
//
// Never a workspace folder (a cloned repository must not choose the program VS Code
// starts). The filesystem and process access is behind `LocatorHost`, so the search
// order is unit-tested (test/serverLocator.test.ts) without VS Code.

import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

export const DEFAULT_COMMAND = "hanlin-lsp";

export type Source = "setting" | "path" | "bundle" | "python";

export interface Located {
  command: string;
  source: Source;
}

export interface LocatorHost {
  platform: NodeJS.Platform;
  env: NodeJS.ProcessEnv;
  home: string;
  isExecutable(file: string): boolean;
  /** Lines a program prints (stdout), or undefined if it cannot be run. */
  run(command: string, args: string[]): string | undefined;
}

function pathApi(platform: NodeJS.Platform): path.PlatformPath {
  return platform === "win32" ? path.win32 : path.posix;
}

function executableNames(platform: NodeJS.Platform, env: NodeJS.ProcessEnv): string[] {
  if (platform !== "win32") {
    return [DEFAULT_COMMAND];
  }
  const exts = (env.PATHEXT ?? ".COM;.EXE;.BAT;.CMD").split(";").filter((e) => e);
  return exts.map((ext) => DEFAULT_COMMAND + ext.toLowerCase());
}

function envValue(env: NodeJS.ProcessEnv, name: string): string | undefined {
  // Windows environment names are case-insensitive (Path, PATH)
  const key = Object.keys(env).find((k) => k.toUpperCase() === name.toUpperCase());
  return key === undefined ? undefined : env[key];
}

/** Every PATH folder joined with the server's file name(s), in PATH order. */
export function pathCandidates(platform: NodeJS.Platform, env: NodeJS.ProcessEnv): string[] {
  const p = pathApi(platform);
  const dirs = (envValue(env, "PATH") ?? "").split(platform === "win32" ? ";" : ":");
  return dirs
    .filter((dir) => dir !== "")
    .flatMap((dir) => executableNames(platform, env).map((name) => p.join(dir, name)));
}

/** Where Hanlin's own installers put hanlin-lsp (installers/linux, windows, macos). */
export function bundleCandidates(
  platform: NodeJS.Platform,
  env: NodeJS.ProcessEnv,
  home: string,
): string[] {
  const p = pathApi(platform);
  if (platform === "win32") {
    const local = envValue(env, "LOCALAPPDATA") ?? p.join(home, "AppData", "Local");
    const programFiles = envValue(env, "ProgramFiles") ?? "C:\\Program Files";
    return [
      p.join(local, "Programs", "Hanlin", "hanlin-lsp.exe"),
      p.join(programFiles, "Hanlin", "hanlin-lsp.exe"),
    ];
  }
  if (platform === "darwin") {
    const inApp = p.join("Hanlin.app", "Contents", "MacOS", DEFAULT_COMMAND);
    return [p.join("/Applications", inApp), p.join(home, "Applications", inApp)];
  }
  return [
    p.join(home, ".local", "opt", "hanlin", DEFAULT_COMMAND), // install.sh
    p.join(home, ".local", "bin", DEFAULT_COMMAND), // install.sh's link, or pip --user
    p.join("/opt", "hanlin", DEFAULT_COMMAND), // install.sh --system
    p.join("/usr", "local", "bin", DEFAULT_COMMAND),
  ];
}

const SCRIPTS_QUERY =
  "import os, sysconfig\n" +
  "print(sysconfig.get_path('scripts'))\n" +
  "print(sysconfig.get_path('scripts', os.name + '_user'))";

/** The scripts folders of the Python interpreters on the PATH, each asked once. */
export function pythonCandidates(host: LocatorHost): string[] {
  const p = pathApi(host.platform);
  const interpreters: [string, string[]][] =
    host.platform === "win32"
      ? [["py", ["-3"]], ["python", []]]
      : [["python3", []], ["python", []]];
  const found: string[] = [];
  for (const [command, args] of interpreters) {
    const out = host.run(command, [...args, "-c", SCRIPTS_QUERY]);
    for (const dir of (out ?? "").split(/\r?\n/).map((line) => line.trim())) {
      if (dir === "") {
        continue;
      }
      for (const name of executableNames(host.platform, host.env)) {
        const candidate = p.join(dir, name);
        if (!found.includes(candidate)) {
          found.push(candidate);
        }
      }
    }
  }
  return found;
}

/** The server to start, or undefined when none was found (the caller says where it looked). */
export function locateServer(configured: string | undefined, host: LocatorHost): Located | undefined {
  const setting = (configured ?? "").trim();
  if (setting !== "" && setting !== DEFAULT_COMMAND) {
    return { command: setting, source: "setting" };
  }
  const groups: [Source, () => string[]][] = [
    ["path", () => pathCandidates(host.platform, host.env)],
    ["bundle", () => bundleCandidates(host.platform, host.env, host.home)],
    ["python", () => pythonCandidates(host)],
  ];
  for (const [source, candidates] of groups) {
    const hit = candidates().find((file) => host.isExecutable(file));
    if (hit !== undefined) {
      return { command: hit, source };
    }
  }
  return undefined;
}

/** The real machine: this process's platform, environment and filesystem. */
export function systemHost(): LocatorHost {
  return {
    platform: process.platform,
    env: process.env,
    home: os.homedir(),
    isExecutable(file: string): boolean {
      try {
        const stat = fs.statSync(file);
        if (!stat.isFile()) {
          return false;
        }
        if (process.platform === "win32") {
          return true;
        }
        fs.accessSync(file, fs.constants.X_OK);
        return true;
      } catch {
        return false;
      }
    },
    run(command: string, args: string[]): string | undefined {
      try {
        return execFileSync(command, args, {
          encoding: "utf8",
          timeout: 5000,
          stdio: ["ignore", "pipe", "ignore"],
          windowsHide: true,
        });
      } catch {
        return undefined;
      }
    },
  };
}

/** For the "not found" message: where the search looked, in order. */
export function describeSearch(host: LocatorHost): string {
  const places = bundleCandidates(host.platform, host.env, host.home).join(", ");
  return `the PATH, ${places}, and the Python environments on the PATH`;
}
