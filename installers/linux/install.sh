#!/bin/sh
# Install the Hanlin bundle this script sits in: the program folder, `hanlin`,
# `hanlin-lsp` and `hanlin-app` on your PATH, the menu entry, the icon and the
# .gguf file type. Upgrading = running a newer bundle's install.sh: the program
# folder is replaced; your settings, chat history and models are never touched
# (they live in ~/.config/hanlin and ~/.local/share/hanlin, not in the bundle).
#
#   ./install.sh                     for you:     ~/.local/opt/hanlin, ~/.local/bin, ~/.local/share
#   sudo ./install.sh --system       everyone:    /opt/hanlin, /usr/local/bin, /usr/local/share
#   ./install.sh --prefix DIR        the program folder elsewhere (links and menu as above)
#   ./install.sh --uninstall         remove the program, links and menu entry; keeps your data
#   ./install.sh --uninstall --purge ... and delete settings, chat history and models too
set -eu

here=$(cd "$(dirname "$0")" && pwd -P)
system=0 uninstall=0 purge=0 prefix=""
while [ $# -gt 0 ]; do
  case "$1" in
    --system) system=1 ;;
    --uninstall) uninstall=1 ;;
    --purge) purge=1 ;;
    --prefix) [ $# -ge 2 ] || { echo "install.sh: --prefix needs a folder" >&2; exit 2; }
              prefix=$2; shift ;;
    --prefix=*) prefix=${1#--prefix=} ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ "$purge" = 1 ] && [ "$uninstall" = 0 ]; then
  echo "install.sh: --purge only goes with --uninstall" >&2; exit 2
fi

if [ "$system" = 1 ]; then
  dest=${prefix:-/opt/hanlin} bin=/usr/local/bin share=/usr/local/share
else
  : "${HOME:?install.sh: HOME is not set}"
  dest=${prefix:-$HOME/.local/opt/hanlin} bin=$HOME/.local/bin
  share=${XDG_DATA_HOME:-$HOME/.local/share}
fi
programs="hanlin hanlin-lsp hanlin-app"
sizes="16 24 32 48 64 128 256 512"

refresh_caches() {
  # each is optional: a desktop without them still finds the files on next login
  if command -v update-desktop-database >/dev/null 2>&1; then
    update-desktop-database -q "$share/applications" 2>/dev/null || true
  fi
  if command -v update-mime-database >/dev/null 2>&1; then
    update-mime-database "$share/mime" >/dev/null 2>&1 || true
  fi
  if command -v gtk-update-icon-cache >/dev/null 2>&1; then
    gtk-update-icon-cache -q -t "$share/icons/hicolor" 2>/dev/null || true
  fi
}

if [ "$uninstall" = 1 ]; then
  for p in $programs; do
    # only our own links: a `hanlin` pip installed there is left alone
    if [ -L "$bin/$p" ] && [ "$(readlink "$bin/$p")" = "$dest/$p" ]; then rm -f "$bin/$p"; fi
  done
  rm -f "$share/applications/hanlin.desktop" "$share/mime/packages/hanlin-gguf.xml" \
        "$share/icons/hicolor/scalable/apps/hanlin.svg"
  for s in $sizes; do rm -f "$share/icons/hicolor/${s}x${s}/apps/hanlin.png"; done
  if [ -x "$dest/hanlin-app" ] && [ -d "$dest/_internal" ]; then rm -rf "$dest"; fi
  refresh_caches
  echo "Hanlin was removed from $dest."
  if [ "$purge" = 1 ]; then
    config=${XDG_CONFIG_HOME:-$HOME/.config}/hanlin data=${XDG_DATA_HOME:-$HOME/.local/share}/hanlin
    cache=${XDG_CACHE_HOME:-$HOME/.cache}/hanlin logs=${XDG_STATE_HOME:-$HOME/.local/state}/hanlin
    rm -rf "$config" "$data" "$cache" "$logs"
    echo "Deleted your settings, chat history and models ($config, $data)."
  else
    echo "Your settings, chat history and models were kept (--purge deletes them)."
  fi
  exit 0
fi

[ -x "$here/hanlin-app" ] && [ -d "$here/_internal" ] || {
  echo "install.sh: run the install.sh inside an unpacked Hanlin bundle" >&2; exit 1; }

# The program folder: copied next to the old one, then swapped in, so a failed copy
# never leaves half a Hanlin; an upgrade replaces only this folder.
if [ "$here" != "$(cd "$dest" 2>/dev/null && pwd -P || true)" ]; then
  mkdir -p "$(dirname "$dest")"
  rm -rf "$dest.new" "$dest.old"
  cp -a "$here" "$dest.new"
  if [ -e "$dest" ]; then mv "$dest" "$dest.old"; fi
  mv "$dest.new" "$dest"
  rm -rf "$dest.old"
fi

mkdir -p "$bin" "$share/applications" "$share/mime/packages"
for p in $programs; do ln -sfn "$dest/$p" "$bin/$p"; done
for s in $sizes; do
  mkdir -p "$share/icons/hicolor/${s}x${s}/apps"
  cp "$dest/share/icons/hicolor/${s}x${s}/apps/hanlin.png" "$share/icons/hicolor/${s}x${s}/apps/"
done
mkdir -p "$share/icons/hicolor/scalable/apps"
cp "$dest/share/icons/hicolor/scalable/apps/hanlin.svg" "$share/icons/hicolor/scalable/apps/"
cp "$dest/share/mime/packages/hanlin-gguf.xml" "$share/mime/packages/"
# the menu entry names the installed program by its full path (menus do not read ~/.bashrc)
sed -e "s|^Exec=hanlin-app|Exec=$dest/hanlin-app|" -e "s|^TryExec=hanlin-app|TryExec=$dest/hanlin-app|" \
  "$dest/share/applications/hanlin.desktop" > "$share/applications/hanlin.desktop"
refresh_caches

echo "Hanlin $("$dest/hanlin" --version 2>/dev/null | sed 's/^hanlin //') is installed in $dest."
case ":$PATH:" in
  *":$bin:"*) ;;
  *) echo "Add $bin to your PATH to run \`hanlin\` and \`hanlin-lsp\` from a terminal." ;;
esac
echo "Open it from your applications menu, or run: hanlin"
