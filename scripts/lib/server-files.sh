# Sourced by the scripts that start test servers later runs reuse (runtime-api.sh,
# daytona-server.sh). A server must not run from the checkout that started it: that clone may be
# deleted while the server keeps answering health checks, and a later run from another clone
# would then reuse a server whose files are gone. So the files a server needs are copied into a
# folder of their own, named by a hash of their content, and the server runs from there. A later
# run reuses a server only when its folder is the one this checkout's files hash to (and still
# exists); otherwise the server is replaced.
#
#   server_files_install NAME DEST=SOURCE...
#       copies each SOURCE (a file or a folder, absolute or relative to the repository root) to
#       DEST inside the folder, and prints the folder: $WORKSPACE_SERVERS_DIR/NAME-<hash>.
#       Copies of NAME with another hash are removed (their servers were stopped first).
#
# Settings: WORKSPACE_SERVERS_DIR (default /opt/workspace-servers when it can be written, else
# ${XDG_CACHE_HOME:-$HOME/.cache}/workspace-servers).

_server_files_repo() { (cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd); }

_server_files_root() {
  if [ -n "${WORKSPACE_SERVERS_DIR:-}" ]; then echo "$WORKSPACE_SERVERS_DIR"; return; fi
  if mkdir -p /opt/workspace-servers 2>/dev/null && [ -w /opt/workspace-servers ]; then
    echo /opt/workspace-servers
  else
    echo "${XDG_CACHE_HOME:-$HOME/.cache}/workspace-servers"
  fi
}

server_files_install() {
  local name=$1; shift
  local repo root pair dest src hash
  repo=$(_server_files_repo)
  root=$(_server_files_root)
  mkdir -p "$root" || { echo "server-files: cannot create $root" >&2; return 1; }
  # The hash covers every file's relative name and content, so a change anywhere replaces it.
  hash=$(
    for pair in "$@"; do
      dest=${pair%%=*} src=${pair#*=}
      case $src in /*) ;; *) src=$repo/$src ;; esac
      [ -e "$src" ] || { echo "server-files: $src is missing" >&2; exit 1; }
      (cd "$src" 2>/dev/null && find . -type f ! -name '*.pyc' -print0 | sort -z |
        xargs -0 sha256sum | sed "s#  \./#  $dest/#") || { echo "$(sha256sum <"$src")  $dest"; }
    done | sha256sum | cut -c1-16
  ) || return 1
  local folder=$root/$name-$hash
  if [ ! -f "$folder/.complete" ]; then
    rm -rf "$folder.tmp" && mkdir -p "$folder.tmp" || return 1
    for pair in "$@"; do
      dest=${pair%%=*} src=${pair#*=}
      case $src in /*) ;; *) src=$repo/$src ;; esac
      mkdir -p "$(dirname "$folder.tmp/$dest")" &&
        cp -R "$src" "$folder.tmp/$dest" || { echo "server-files: cannot copy $src" >&2; return 1; }
    done
    find "$folder.tmp" -name __pycache__ -type d -prune -exec rm -rf {} +
    touch "$folder.tmp/.complete" && rm -rf "$folder" && mv "$folder.tmp" "$folder" || return 1
  fi
  local old
  for old in "$root/$name"-*; do
    [ -d "$old" ] && [ "$old" != "$folder" ] && rm -rf "$old"
  done
  echo "$folder"
}
