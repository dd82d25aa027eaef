// Drives VS Code (code-server) in headless Chromium: opens a real file, types a new
// function, waits for Hanlin's ghost text in the editor's DOM, accepts it with Tab and
// checks the line. Screenshots go to $SHOTS. Run by run_code_server.sh, which starts
// code-server with the packaged extension and sets the environment below.
//   CODE_URL   http://127.0.0.1:PORT/?folder=...   CHROMIUM  path of chromium
//   FILE_NAME  the file to open (in the folder)     SHOTS     folder for the screenshots
"use strict";
const puppeteer = require("puppeteer-core");

const url = process.env.CODE_URL;
const shots = process.env.SHOTS;
const fileName = process.env.FILE_NAME;
const timeoutMs = Number(process.env.GHOST_TIMEOUT_MS || 90000);

function log(message) {
  console.log(`[drive] ${new Date().toISOString()} ${message}`);
}

async function main() {
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,900"],
    defaultViewport: { width: 1400, height: 900 },
  });
  const page = await browser.newPage();
  try {
    log(`open ${url}`);
    await page.goto(url, { waitUntil: "domcontentloaded", timeout: 120000 });
    await page.waitForSelector(".monaco-workbench", { timeout: 120000 });
    log("workbench loaded");
    // the status bar item of the extension says the model's state
    await page.waitForFunction(
      () => [...document.querySelectorAll(".statusbar-item")].some((e) => /Hanlin/.test(e.textContent || "")),
      { timeout: 120000 },
    );
    log("Hanlin status bar item shown");
    if (process.env.CHECK === "no-model") {
      // no model configured: the item says so (never "starting" forever), the tooltip how
      const item = await page.waitForFunction(
        () =>
          [...document.querySelectorAll(".statusbar-item")].find((e) =>
            /Hanlin: no model/.test(e.textContent || ""),
          ),
        { timeout: 60000 },
      );
      await item.asElement().hover();
      await page.waitForFunction(
        () => /No completion model configured/.test(document.body.innerText),
        { timeout: 20000 },
      );
      log("no-model status and tooltip shown");
      await page.screenshot({ path: `${shots}/vscode-no-model.png` });
      log("OK");
      return;
    }
    await page.keyboard.down("Control");
    await page.keyboard.press("KeyP");
    await page.keyboard.up("Control");
    await page.waitForSelector(".quick-input-widget input", { visible: true, timeout: 30000 });
    await page.keyboard.type(fileName, { delay: 20 });
    await new Promise((r) => setTimeout(r, 1500));
    await page.keyboard.press("Enter");
    await page.waitForSelector(".monaco-editor .view-lines", { timeout: 30000 });
    log("file open");
    // the model must be ready before typing (the status bar turns to the sparkle)
    await page.waitForFunction(
      () =>
        [...document.querySelectorAll(".statusbar-item")].some(
          (e) => /Hanlin/.test(e.textContent || "") && e.querySelector(".codicon-sparkle"),
        ),
      { timeout: 120000 },
    );
    log("model ready");
    await page.click(".monaco-editor .view-lines");
    await page.keyboard.down("Control");
    await page.keyboard.press("End");
    await page.keyboard.up("Control");
    await page.keyboard.press("Enter");
    await page.keyboard.press("Enter");
    await page.keyboard.type("def clamp(x, lo, hi):", { delay: 40 });
    await page.keyboard.press("Enter"); // the editor indents the new line
    await page.keyboard.type('"""Clamp x to the range [lo, hi]."""', { delay: 20 });
    await page.keyboard.press("Enter");
    await page.keyboard.type("return ", { delay: 60 });
    const started = Date.now();
    await page.waitForSelector(".monaco-editor .ghost-text-decoration, .monaco-editor .ghost-text", {
      timeout: timeoutMs,
    });
    const ghost = await page.$$eval(
      ".monaco-editor .ghost-text-decoration, .monaco-editor .ghost-text",
      (els) => els.map((e) => e.textContent || "").join(""),
    );
    log(`ghost text after ${Date.now() - started} ms: ${JSON.stringify(ghost)}`);
    if (!ghost.trim()) throw new Error("the ghost text element is empty");
    await page.screenshot({ path: `${shots}/vscode-ghost-text.png` });
    await page.keyboard.press("Tab");
    await new Promise((r) => setTimeout(r, 800));
    // the rendered lines, in screen order (Monaco positions them with style.top)
    const lines = await page.$$eval(".monaco-editor .view-line", (els) =>
      els
        .map((e) => ({ top: parseFloat(e.style.top || "0"), text: (e.textContent || "").replace(/\u00a0/g, " ") }))
        .sort((a, b) => a.top - b.top)
        .map((l) => l.text),
    );
    const at = lines.findIndex((l) => l.startsWith("def clamp("));
    const accepted = at >= 0 ? lines.slice(at + 2).join("\n") : "";
    log(`after Tab: ${JSON.stringify(accepted)}`);
    const squash = (t) => t.replace(/\s+/g, "");
    if (!accepted.startsWith("    return ") || !squash(accepted).startsWith(squash("return " + ghost))) {
      throw new Error(`the accepted text is not in the editor: ${JSON.stringify(lines.slice(-6))}`);
    }
    if (accepted.startsWith("    return  ")) {
      throw new Error("one space too many after `return `");
    }
    await page.screenshot({ path: `${shots}/vscode-accepted.png` });
    log("OK");
  } catch (error) {
    await page.screenshot({ path: `${shots}/vscode-failure.png` }).catch(() => undefined);
    throw error;
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  console.error(`[drive] FAILED: ${error && error.stack ? error.stack : error}`);
  process.exit(1);
});
