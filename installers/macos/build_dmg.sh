#!/usr/bin/env bash
# Build Hanlin.app and Hanlin-<version>-macos-<arch>.dmg on macOS 12+ (Apple silicon or Intel).
#
#   bash installers/macos/build_dmg.sh [--python python3.11]
#
# On Apple silicon the app is built with llama.cpp's Metal backend (the default there;
# this script checks llama_supports_gpu_offload and rebuilds llama-cpp-python with
# -DGGML_METAL=on if it is off). On Intel Macs the build is CPU-only.
#
# Signing (optional; without it the app is signed ad hoc and runs on this Mac, or
# elsewhere after right-click > Open):
#   HANLIN_CODESIGN_IDENTITY="Developer ID Application: Name (TEAMID)"  sign with the
#       hardened runtime and installers/macos/entitlements.plist
#   HANLIN_NOTARY_PROFILE=profile   then notarize and staple the .dmg
#       (create the profile once: xcrun notarytool store-credentials profile ...)
# Needs: Xcode command line tools, Python 3.11+ with Hanlin installed (pip install -e .),
# Node.js 20+ for the VS Code extension (or pass --no-vsix).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${PYTHON:-python3}
vsix=1
while [ $# -gt 0 ]; do
  case "$1" in
    --python) python=$2; shift ;;
    --no-vsix) vsix=0 ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build_dmg.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ "$(uname -s)" = Darwin ] || { echo "build_dmg.sh: run this on macOS" >&2; exit 1; }
cd "$root"

arch=$(uname -m)
version=$("$python" -c "import tomllib;print(tomllib.load(open('pyproject.toml','rb'))['project']['version'])")
backend=cpu
if [ "$arch" = arm64 ]; then
  backend=metal
  if ! "$python" -c 'import llama_cpp, sys; sys.exit(0 if llama_cpp.llama_supports_gpu_offload() else 1)'; then
    echo "llama-cpp-python has no Metal: rebuilding it with -DGGML_METAL=on"
    bash "$root/installers/gpu/build.sh" metal --python "$python"
  fi
fi

"$python" -m pip install -e ".[bundle]"
if [ "$vsix" = 1 ]; then "$python" installers/build.py vsix; fi
bundle_args=(bundle --backend "$backend")
if [ "$vsix" = 0 ]; then bundle_args+=(--no-vsix); fi
HANLIN_ENTITLEMENTS="$here/entitlements.plist" "$python" installers/build.py "${bundle_args[@]}"

app="$root/dist/Hanlin.app"
# build.py added Contents/Resources/editors after PyInstaller signed the binaries:
# seal the bundle again (the inner binaries keep their signatures)
if [ -n "${HANLIN_CODESIGN_IDENTITY:-}" ]; then
  codesign --force --options runtime --timestamp --entitlements "$here/entitlements.plist" \
    --sign "$HANLIN_CODESIGN_IDENTITY" "$app"
else
  codesign --force --sign - "$app"
fi
codesign --verify --strict --verbose=2 "$app"
"$app/Contents/MacOS/hanlin" doctor

dmg="$root/dist/Hanlin-$version-macos-$arch.dmg"
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
cp -R "$app" "$staging/"
ln -s /Applications "$staging/Applications"
rm -f "$dmg"
hdiutil create -volname "Hanlin $version" -srcfolder "$staging" -ov -format UDZO "$dmg"
if [ -n "${HANLIN_CODESIGN_IDENTITY:-}" ]; then
  codesign --force --timestamp --sign "$HANLIN_CODESIGN_IDENTITY" "$dmg"
fi
if [ -n "${HANLIN_NOTARY_PROFILE:-}" ]; then
  xcrun notarytool submit "$dmg" --keychain-profile "$HANLIN_NOTARY_PROFILE" --wait
  xcrun stapler staple "$dmg"
fi
echo "Built $dmg"
