#!/usr/bin/env bash
# End-to-end check of the packaged VS Code extension in a real VS Code (code-server
# 4.100.x, on Node 20) shown by Debian's headless Chromium: opens a real file, types a
# function, asserts Hanlin's ghost text in the editor's DOM, accepts it with Tab.
#
#   installers/vscode/e2e/run_code_server.sh MODEL.gguf [SHOTS_DIR]
#
# Needs: node 20 + npm, Debian's `chromium` and `ripgrep` (apt-get install chromium
# ripgrep), a C++ toolchain (node-gyp builds code-server's native modules against
# /usr/include/node), `hanlin-lsp` on the PATH (or HANLIN_LSP), and the .vsix
# (HANLIN_VSIX, default: dist/hanlin-<version>.vsix from `installers/build.py vsix`).
#
# code-server's npm postinstall fails here with TAR_ENTRY_ERROR, so it is installed by
# hand: `npm pack`, `npm install --ignore-scripts` for it and for lib/vscode, node-gyp
# for the native modules it loads (argon2, spdlog, node-pty, native-watchdog,
# @parcel/watcher, deviceid), Debian's rg for @vscode/ripgrep, and the symlinks the
# postinstall would make. All of it goes to $WORK (default ~/.cache/hanlin-code-server)
# and is reused by later runs.
set -euo pipefail

MODEL=${1:?usage: run_code_server.sh MODEL.gguf [SHOTS_DIR]}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
SHOTS=$(mkdir -p "${2:-$ROOT/docs/screenshots}" && cd "${2:-$ROOT/docs/screenshots}" && pwd)
WORK=${WORK:-$HOME/.cache/hanlin-code-server}
CODE_SERVER_VERSION=${CODE_SERVER_VERSION:-4.100.3}
PORT=${PORT:-18089}
HANLIN_LSP=${HANLIN_LSP:-$(command -v hanlin-lsp)}
VSIX=${HANLIN_VSIX:-$(ls "$ROOT"/dist/hanlin-*.vsix 2>/dev/null | tail -1)}
CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser)}
[ -f "$VSIX" ] || { echo "no .vsix: run python installers/build.py vsix, or set HANLIN_VSIX" >&2; exit 2; }
GYP=$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js

mkdir -p "$WORK"
CS="$WORK/code-server-$CODE_SERVER_VERSION"
if [ ! -f "$CS/.installed" ]; then
  echo "== installing code-server $CODE_SERVER_VERSION into $CS"
  rm -rf "$CS" && mkdir -p "$CS"
  (cd "$WORK" && npm pack "code-server@$CODE_SERVER_VERSION" --silent >/dev/null)
  tar xzf "$WORK/code-server-$CODE_SERVER_VERSION.tgz" -C "$CS" --strip-components=1
  (cd "$CS" && npm install --omit=dev --ignore-scripts --no-audit --no-fund >/dev/null)
  (cd "$CS/lib/vscode" && npm install --omit=dev --ignore-scripts --no-audit --no-fund >/dev/null)
  (cd "$CS/node_modules/argon2" && node "$GYP" rebuild --nodedir=/usr -j 2 \
    --module_name=argon2 --module_path="$PWD/lib/binding/napi-v3" --napi_build_version=3 >/dev/null)
  for m in @vscode/spdlog node-pty native-watchdog @parcel/watcher @vscode/deviceid; do
    (cd "$CS/lib/vscode/node_modules/$m" && node "$GYP" rebuild --nodedir=/usr -j 2 >/dev/null)
  done
  mkdir -p "$CS/lib/vscode/node_modules/@vscode/ripgrep/bin"
  ln -sf "$(command -v rg)" "$CS/lib/vscode/node_modules/@vscode/ripgrep/bin/rg"
  ln -sfn node_modules "$CS/lib/vscode/node_modules.asar"
  (cd "$CS/lib/vscode/bin/remote-cli" && ln -sf code-linux.sh code-server)
  (cd "$CS/lib/vscode/bin/helpers" && ln -sf browser-linux.sh browser.sh)
  touch "$CS/.installed"
fi
if [ ! -d "$WORK/driver/node_modules/puppeteer-core" ]; then
  mkdir -p "$WORK/driver"
  (cd "$WORK/driver" && PUPPETEER_SKIP_DOWNLOAD=1 npm install puppeteer-core@24 --no-audit --no-fund --ignore-scripts >/dev/null)
fi

RUN=$(mktemp -d)
trap 'kill "${CS_PID:-0}" 2>/dev/null || true; rm -rf "$RUN"' EXIT
mkdir -p "$RUN/udd/User" "$RUN/ext" "$RUN/project" "$RUN/hanlin-home"
STDLIB=$(python3 -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')
cp "$STDLIB/colorsys.py" "$RUN/project/colorsys.py"   # a real file no one here wrote
cat > "$RUN/udd/User/settings.json" <<JSON
{
  "hanlin.serverCommand": "$HANLIN_LSP",
  "hanlin.model": "$MODEL",
  "hanlin.threads": 1,
  "hanlin.maxTokens": 24,
  "hanlin.timeBudgetMs": 20000,
  "editor.inlineSuggest.enabled": true,
  "workbench.startupEditor": "none",
  "security.workspace.trust.enabled": false,
  "telemetry.telemetryLevel": "off",
  "extensions.autoCheckUpdates": false,
  "update.mode": "none"
}
JSON
node "$CS/out/node/entry.js" --user-data-dir "$RUN/udd" --extensions-dir "$RUN/ext" \
  --install-extension "$VSIX" >/dev/null
HANLIN_HOME="$RUN/hanlin-home" node "$CS/out/node/entry.js" --auth none \
  --bind-addr "127.0.0.1:$PORT" --user-data-dir "$RUN/udd" --extensions-dir "$RUN/ext" \
  --disable-telemetry --disable-workspace-trust "$RUN/project" > "$RUN/code-server.log" 2>&1 &
CS_PID=$!
for _ in $(seq 1 120); do
  curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break
  sleep 0.5
done
started=$(date +%s)
status=0
drive() {
  CODE_URL="http://127.0.0.1:$PORT/?folder=$RUN/project" CHROMIUM="$CHROMIUM" \
    FILE_NAME=colorsys.py SHOTS="$SHOTS" NODE_PATH="$WORK/driver/node_modules" \
    node "$HERE/drive_code_server.cjs"
}
# 1. the model: ghost text, Tab
drive || status=$?
# 2. no model at all: the status bar says so and how to set one
if [ $status -eq 0 ]; then
  sed -i 's|"hanlin.model": ".*"|"hanlin.model": ""|' "$RUN/udd/User/settings.json"
  CHECK=no-model drive || status=$?
fi
echo "== took $(( $(date +%s) - started )) s; screenshots in $SHOTS"
if [ $status -ne 0 ]; then
  echo "== code-server log:"; tail -40 "$RUN/code-server.log"
  find "$RUN/udd" -name '*Hanlin*.log' -exec tail -30 {} \; 2>/dev/null || true
fi
exit $status
