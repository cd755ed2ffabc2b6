# Sourced by the scripts (after scripts/lib/ensure-packages.sh): runs the real OpenHands agent
# server (`openhands-agent-server` from PyPI) on 127.0.0.1 for the RemoteWorkspace tests.
#
#   ensure_agent_server   starts it (or finds the one already running) and exports
#                         AGENT_SERVER_URL          http://127.0.0.1:PORT
#                         AGENT_SERVER_SESSION_KEY  the value for the X-Session-API-Key header
#                         AGENT_SERVER_WORKSPACE    a host folder the server sees at the same path
#                         AGENT_SERVER_PID          the process to kill to stop it
#                         returns non-zero, saying why on stderr, when it cannot.
#   stop_agent_server     stops it (and every command it still runs); idempotent.
#   agent_server_prepare  only makes sure a server can be launched (Python, trixie folder, venv).
#   agent_server_instance_start / agent_server_instance_stop
#                         one more server on a given port, for callers that manage several
#                         (see scripts/agent-server-instance and tests/servers/runtime_api).
#
# The server needs Python >= 3.12. A python3.13/python3.12 on PATH that runs is used as it is;
# otherwise Debian trixie (Python 3.13) is put in WORKSPACE_TRIXIE_ROOT with debootstrap, from
# the Debian mirror the machine's apt sources name, and the server runs chrooted there, in its
# own mount and PID namespaces (so stopping it ends every command it started, and the bind
# mounts vanish with it). Both the folder and the venv are kept, so later runs start in seconds.
#
# Settings (environment, all optional):
#   WORKSPACE_TRIXIE_ROOT        the Debian trixie folder (default /opt/workspace-trixie)
#   WORKSPACE_DEBIAN_MIRROR      the Debian mirror for debootstrap (default: read from apt sources)
#   AGENT_SERVER_PYTHON          a Python >= 3.12 to use instead of searching PATH; "chroot" forces
#                                the trixie folder
#   AGENT_SERVER_STATE_DIR       pid, log, key and the server's own state (default
#                                /tmp/workspace-agent-server)
#   AGENT_SERVER_WORKSPACE       the shared workspace folder (default $AGENT_SERVER_STATE_DIR/workspace)
#   AGENT_SERVER_START_TIMEOUT   seconds to wait for /health (default 120)

AGENT_SERVER_VERSION=1.58.0
# The newest release whose dependencies the registry here resolves (1.58.1 and 1.58.2 need a
# certifi it does not have). Resolving openhands-agent-server's loose requirements takes pip
# about six minutes of backtracking, so the set that resolved is pinned below as constraints;
# pip then installs in well under a minute.
_agent_server_constraints() {
  cat <<'EOF'
agent-client-protocol==0.12.1
aiofile==3.12.3
aiofiles==25.1.0
aiohappyeyeballs==2.7.1
aiohttp==3.14.5
aiosignal==1.4.0
aiosqlite==0.22.1
alembic==1.20.1
annotated-doc==0.0.7
annotated-types==0.8.0
anthropic==0.125.0
anyio==4.16.0
attrs==26.1.0
Authlib==1.9.9
backoff==2.2.1
beartype==0.23.1
beautifulsoup4==4.15.0
binaryornot==0.6.0
blake3==1.0.11
boto3==1.44.5
botocore==1.44.5
browser-use==0.11.13
browser-use-sdk==3.12.1
bubus==1.5.6
cachetools==8.0.1
caio==0.12.10
cdp-use==1.4.5
certifi==2026.10.18
cffi==2.1.1
charset-normalizer==3.5.2
click==8.5.1
cloudpickle==3.1.2
cryptography==50.0.2
cyclopts==5.4.0
deprecation==2.1.0
distro==1.9.0
dnspython==2.9.2
docker==7.2.0
docstring_parser==0.18.0
email-validator==2.4.0
exceptiongroup==1.3.1
fakeredis==2.40.0
fastapi==0.165.0
fastmcp==3.4.10
fastmcp-slim==3.4.10
fastuuid==0.14.0
filelock==3.32.7
frozenlist==1.8.0
fsspec==2026.9.0
func_timeout==4.3.5
google-api-core==2.44.0
google-api-python-client==2.202.0
google-auth==2.62.2
google-auth-httplib2==0.4.4
google-auth-oauthlib==1.5.0
google-genai==1.75.0
googleapis-common-protos==1.76.0
griffelib==2.4.1
groq==1.7.0
grpcio==1.85.1
h11==0.16.0
h2==4.4.1
hf-xet==1.8.0
hpack==4.2.0
httpcore==1.0.9
httplib2==0.32.1
httpx==0.28.1
httpx-sse==0.4.3
huggingface_hub==1.33.0
hyperframe==6.1.0
idna==3.20
importlib_metadata==8.9.0
inquirerpy==0.3.4
jaraco.classes==3.4.0
jaraco.context==6.1.2
jaraco.functools==4.6.0
jeepney==0.9.0
Jinja2==3.1.6
jiter==0.19.0
jmespath==1.1.0
joserfc==1.8.0
json_repair==0.64.5
jsonref==1.1.0
jsonschema==4.26.0
jsonschema-path==0.5.0
jsonschema-specifications==2025.9.1
keyring==25.7.0
libtmux==0.62.0
litellm==1.105.3
lmnr==0.7.67
lmnr-claude-code-proxy==0.2.0
lupa==2.8
lxml==6.1.3
Mako==1.4.3
markdown-it-py==4.3.0
markdownify==1.2.3
MarkupSafe==3.0.4
mcp==1.30.0
mdurl==0.1.2
more-itertools==11.2.1
multidict==7.2.1
oauthlib==4.0.1
ollama==0.6.3
openai==2.54.0
openapi-pydantic==0.6.0
openhands-agent-server==1.58.0
openhands-sdk==1.58.0
openhands-tools==1.58.0
opentelemetry-api==1.45.1
opentelemetry-exporter-http-transport==0.66b1
opentelemetry-exporter-otlp-common==0.66b1
opentelemetry-exporter-otlp-proto-common==1.45.1
opentelemetry-exporter-otlp-proto-grpc==1.45.1
opentelemetry-exporter-otlp-proto-http==1.45.1
opentelemetry-instrumentation==0.66b1
opentelemetry-instrumentation-threading==0.66b1
opentelemetry-proto==1.45.1
opentelemetry-sdk==1.45.1
opentelemetry-semantic-conventions==0.66b1
opentelemetry-semantic-conventions-ai==0.4.13
orjson==3.13.0
packaging==26.3
pathable==0.6.0
pfzy==0.3.4
pillow==13.0.0
platformdirs==4.14.7
portalocker==2.10.1
posthog==7.91.1
prompt_toolkit==3.0.53
propcache==0.5.4
proto-plus==1.29.0
protobuf==7.36.2
psutil==7.2.2
py-key-value-aio==0.4.6
pyasn1==0.6.5
pyasn1_modules==0.4.2
pycparser==3.12
pydantic==2.14.3
pydantic-settings==2.16.3
pydantic_core==2.50.4
Pygments==2.21.0
PyJWT==2.15.1
PyOTP==2.12.0
pyparsing==3.3.3
pypdf==7.1.0
pyperclip==1.11.0
python-dateutil==2.9.0.post0
python-docx==1.2.0
python-dotenv==1.2.4
python-frontmatter==1.3.0
python-json-logger==4.2.0
python-multipart==0.0.34
PyYAML==6.0.3
redis==8.1.0
referencing==0.37.0
regex==2026.11.15
reportlab==5.1.0
requests==2.34.2
requests-oauthlib==2.0.0
rich==15.0.0
rich-rst==2.2.0
rpds-py==2026.9.1
s3transfer==0.19.3
screeninfo==0.8.1
SecretStorage==3.5.0
six==1.17.0
sniffio==1.3.1
socksio==1.0.0
sortedcontainers==2.4.0
soupsieve==4.1.2
SQLAlchemy==2.1.9
sse-starlette==3.7.0
starlette==1.10.0
tenacity==9.1.4
tiktoken==0.14.0
tokenizers==0.23.3
tom-swe==1.0.3
tqdm==4.70.1
tree-sitter==0.26.1
tree-sitter-bash==0.25.1
typing-inspection==0.4.5
typing_extensions==4.16.0
uncalled-for==0.6.1
uritemplate==4.2.0
urllib3==2.8.0
uuid7==0.1.0
uvicorn==0.54.0
watchfiles==1.3.0
wcwidth==0.9.4
websockets==16.1.1
wrapt==1.17.3
wsproto==1.3.2
yarl==1.25.1
zipp==4.1.2
EOF
}

_agent_server_say() { echo "agent-server: $*" >&2; }

_agent_server_sudo() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# The Debian mirror the machine's apt already uses: the first enabled deb entry for the host's
# own release, from sources.list, *.list or deb822 *.sources files.
_agent_server_debian_mirror() {
  if [ -n "${WORKSPACE_DEBIAN_MIRROR:-}" ]; then echo "$WORKSPACE_DEBIAN_MIRROR"; return 0; fi
  local codename
  codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
  local files=()
  [ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
  local f
  for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && files+=("$f")
  done
  [ ${#files[@]} -gt 0 ] || return 1
  local mirror
  mirror=$(awk -v want="$codename" '
    function flush(   n, i, s, u) {
      if (!found && types ~ /(^| )deb( |$)/ && enabled !~ /^(no|false)$/ && uris != "") {
        n = split(suites, s, " ")
        for (i = 1; i <= n; i++) if (s[i] == want || (want == "" && s[i] !~ /-/)) {
          split(uris, u, " "); print u[1]; found = 1; break
        }
      }
      types = ""; uris = ""; suites = ""; enabled = ""
    }
    found { exit }
    FNR == 1 { flush() }
    FILENAME ~ /[.]sources$/ {
      if ($0 ~ /^[ \t]*$/) { flush(); next }
      if ($0 ~ /^[ \t]*#/) next
      key = tolower($1); sub(/:$/, "", key); $1 = ""; sub(/^ +/, "")
      if (key == "types") types = $0
      else if (key == "uris") uris = $0
      else if (key == "suites") suites = $0
      else if (key == "enabled") enabled = tolower($0)
      next
    }
    $1 == "deb" {
      i = 2
      if ($i ~ /^\[/) { while ($i !~ /\]$/ && i < NF) i++; i++ }
      if ($(i + 1) == want || (want == "" && $(i + 1) !~ /-/)) { print $i; found = 1; exit }
    }
    END { flush() }
' "${files[@]}" 2>/dev/null | head -n1)
  [ -n "$mirror" ] || return 1
  echo "${mirror%/}"
}

# A Python >= 3.12 on the host that really runs (pyenv shims of uninstalled versions do not).
_agent_server_host_python() {
  local py
  if [ -n "${AGENT_SERVER_PYTHON:-}" ]; then
    [ "$AGENT_SERVER_PYTHON" = chroot ] && return 1
    py=$AGENT_SERVER_PYTHON
    if "$py" -c 'import sys, venv; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; then
      command -v "$py"; return 0
    fi
    _agent_server_say "AGENT_SERVER_PYTHON=$py is not a Python >= 3.12 with venv"
    return 2
  fi
  for py in python3.13 python3.12 python3; do
    command -v "$py" >/dev/null 2>&1 || continue
    if "$py" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; then
      command -v "$py"; return 0
    fi
  done
  return 1
}

# Debian trixie with Python 3.13 in WORKSPACE_TRIXIE_ROOT, made once and reused.
_agent_server_ensure_trixie() {
  local root=$1
  [ -f "$root/.workspace-trixie-ready" ] && return 0
  ensure_packages debootstrap || { _agent_server_say "cannot install debootstrap"; return 1; }
  local mirror
  mirror=$(_agent_server_debian_mirror) || {
    _agent_server_say "no Debian mirror found in /etc/apt/sources.list(.d); set WORKSPACE_DEBIAN_MIRROR"
    return 1
  }
  local keyring=()
  [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] &&
    keyring=(--keyring=/usr/share/keyrings/debian-archive-keyring.gpg)
  _agent_server_say "debootstrap trixie into $root from $mirror (about two minutes)"
  _agent_server_sudo rm -rf "$root.partial"
  _agent_server_sudo mkdir -p "$(dirname "$root")"
  if ! _agent_server_sudo debootstrap --variant=minbase "${keyring[@]}" \
      --include=python3,python3-venv,python3-pip,git,ca-certificates,procps \
      trixie "$root.partial" "$mirror" >"${TMPDIR:-/tmp}/workspace-debootstrap.log" 2>&1; then
    _agent_server_say "debootstrap failed; last lines of ${TMPDIR:-/tmp}/workspace-debootstrap.log:"
    tail -n 15 "${TMPDIR:-/tmp}/workspace-debootstrap.log" >&2
    return 1
  fi
  _agent_server_sudo rm -rf "$root"
  _agent_server_sudo mv "$root.partial" "$root" &&
    _agent_server_sudo touch "$root/.workspace-trixie-ready"
}

# Runs a command inside the trixie folder with a clean environment.
_agent_server_in_root() {
  local root=$1; shift
  _agent_server_sudo chroot "$root" /usr/bin/env -i \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"
}

# pip-installs the pinned server into the venv VENV (a path as the Python PY sees it); RUN is a
# prefix that runs a command where that Python lives; CERT a CA bundle path as seen there.
_agent_server_install() {
  local venv=$1 cert=$2 constraints=$3; shift 3
  local stamp="$venv/.workspace-agent-server-$AGENT_SERVER_VERSION"
  "$@" test -f "$stamp" && return 0
  _agent_server_say "installing openhands-agent-server==$AGENT_SERVER_VERSION in $venv"
  local pass=()
  local v
  for v in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST http_proxy https_proxy no_proxy \
      HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    [ -n "${!v:-}" ] && pass+=("$v=${!v}")
  done
  [ -n "$cert" ] && pass+=("PIP_CERT=$cert" "SSL_CERT_FILE=$cert")
  "$@" rm -rf "$venv" &&
    "$@" "$PY" -m venv "$venv" &&
    "$@" env "${pass[@]}" PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
      "$venv/bin/pip" install -q --progress-bar off -c "$constraints" \
      "openhands-agent-server==$AGENT_SERVER_VERSION" \
      "openhands-sdk==$AGENT_SERVER_VERSION" "openhands-tools==$AGENT_SERVER_VERSION" || {
    _agent_server_say "pip install of openhands-agent-server==$AGENT_SERVER_VERSION failed"
    return 1
  }
  "$@" touch "$stamp"
}

# PID is a live process (not a zombie); works for root's processes when we are not root.
_agent_server_running() {
  [ -n "$1" ] && [ -r "/proc/$1/stat" ] && ! grep -q '^[0-9]* (.*) Z' "/proc/$1/stat" 2>/dev/null
}

_agent_server_alive() {  # URL KEY PID: running and answering with this key
  _agent_server_running "$3" || return 1
  curl -fsS -m 5 -o /dev/null "$1/health" 2>/dev/null || return 1
  curl -fsS -m 5 -o /dev/null -H "X-Session-API-Key: $2" \
    "$1/api/bash/bash_events/search?limit=1" 2>/dev/null
}

# Makes sure the server can be launched: finds a host Python >= 3.12 or makes the trixie folder,
# and installs the pinned server into a venv (once; later calls take well under a second).
# STATE holds constraints.txt, install.lock and, in host mode, the venv. Sets _agent_server_mode
# (host|chroot), _agent_server_py, _agent_server_venv and _agent_server_root for
# _agent_server_spawn. Callers running in parallel serialise on STATE/install.lock.
agent_server_prepare() {
  local state=${1:-${AGENT_SERVER_STATE_DIR:-/tmp/workspace-agent-server}}
  local root=${2:-${WORKSPACE_TRIXIE_ROOT:-/opt/workspace-trixie}}
  mkdir -p "$state" || { _agent_server_say "cannot create $state"; return 1; }
  local lockfd rc
  exec {lockfd}>"$state/install.lock" || return 1
  if ! flock -w 1800 "$lockfd"; then
    _agent_server_say "timed out waiting for $state/install.lock"
    exec {lockfd}>&-
    return 1
  fi
  _agent_server_prepare_locked "$state" "$root"
  rc=$?
  exec {lockfd}>&-
  return $rc
}

_agent_server_prepare_locked() {
  local state=$1 root=$2
  local cert=""
  local c
  for c in "${PIP_CERT:-}" "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
    [ -n "$c" ] && [ -f "$c" ] && { cert=$c; break; }
  done
  local PY
  _agent_server_constraints >"$state/constraints.txt"
  _agent_server_root=$root
  if PY=$(_agent_server_host_python); then
    _agent_server_mode=host _agent_server_py=$PY
    _agent_server_venv=${AGENT_SERVER_VENV:-$state/venv-$(basename "$PY")}
    _agent_server_install "$_agent_server_venv" "$cert" "$state/constraints.txt" env || return 1
  else
    [ $? -eq 2 ] && return 1
    _agent_server_mode=chroot _agent_server_py=/usr/bin/python3 PY=/usr/bin/python3
    _agent_server_venv=/opt/agent-server-venv
    _agent_server_ensure_trixie "$root" || return 1
    [ -f "$root$_agent_server_venv/.workspace-agent-server-$AGENT_SERVER_VERSION" ] && return 0
    # pip inside needs name resolution and the host's CA bundle (which may hold a proxy's CA).
    _agent_server_sudo cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null
    if [ -n "$cert" ]; then
      _agent_server_sudo cp -L "$cert" "$root/etc/workspace-host-ca.crt" || return 1
      cert=/etc/workspace-host-ca.crt
    fi
    _agent_server_sudo cp "$state/constraints.txt" "$root/tmp/workspace-constraints.txt" || return 1
    _agent_server_install "$_agent_server_venv" "$cert" /tmp/workspace-constraints.txt \
      _agent_server_in_root "$root" || return 1
  fi
}

# A free loopback port (the kernel's pick; the caller retries if someone takes it first).
_agent_server_free_port() {
  local code='import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
  if [ "$_agent_server_mode" = host ]; then
    "$_agent_server_py" -c "$code"
  else
    _agent_server_in_root "$_agent_server_root" python3 -c "$code"
  fi
}

# _agent_server_spawn PIDFILE LOGFILE PORT KEY WS SRV [NAME=VALUE...]
# Launches one server (as agent_server_prepare set up) on 127.0.0.1:PORT accepting KEY, with the
# host folder WS seen at the same path, its own state in the host folder SRV (emptied first; its
# working directory) and NAME=VALUE added to its environment. Prints the pid of the process group
# leader once the process exists; does not wait for /health. The log goes to LOGFILE.
_agent_server_spawn() {
  local pidfile=$1 logfile=$2 port=$3 key=$4 ws=$5 srv=$6; shift 6
  local venv=$_agent_server_venv root=$_agent_server_root launch=() sudo=()
  local env=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
    LANG=C.UTF-8 PYTHONUNBUFFERED=1 OH_ENABLE_VSCODE=0
    OH_PRELOAD_TOOLS=0 OH_ENABLE_BROWSER=0 TMUX_TMPDIR=/tmp
    LITELLM_LOCAL_MODEL_COST_MAP=True "$@" OH_SESSION_API_KEYS_0="$key")
  if [ "$_agent_server_mode" = host ]; then
    rm -rf "$srv" && mkdir -p "$srv" || { _agent_server_say "cannot create $srv"; return 1; }
    # shellcheck disable=SC2016
    launch=(sh -c 'cd "$1" && shift && exec "$@"' sh "$srv" env -i "${env[@]}" HOME="$HOME"
      "$venv/bin/python" -m openhands.agent_server --host 127.0.0.1 --port "$port")
  else
    _agent_server_sudo rm -rf "$srv" && mkdir -p "$srv" ||
      { _agent_server_say "cannot create $srv"; return 1; }
    # Own mount and PID namespaces: /proc, /dev, the workspace and the state folder are mounted
    # for the server only, and when it stops the kernel ends every command it left behind.
    # shellcheck disable=SC2016
    launch=(unshare --mount --propagation private --pid --fork --kill-child=SIGTERM
      --mount-proc="$root/proc" sh -c '
        root=$1 ws=$2 srv=$3; shift 3
        mount --rbind /dev "$root/dev" &&
        mkdir -p "$root$ws" && mount --bind "$ws" "$root$ws" &&
        mkdir -p "$root$srv" && mount --bind "$srv" "$root$srv" &&
        exec chroot "$root" /bin/sh -c '\''cd "$1" && shift && exec "$@"'\'' sh "$srv" \
          /usr/bin/env -i "$@"' sh "$root" "$ws" "$srv"
      "${env[@]}" "$venv/bin/python" -m openhands.agent_server --host 127.0.0.1 --port "$port")
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  fi
  # setsid forks when the caller's job control made us a group leader, so the server's pid
  # is the one it writes itself.
  rm -f "$pidfile"
  # shellcheck disable=SC2016
  "${sudo[@]}" setsid sh -c 'echo $$ >"$0" && exec "$@"' "$pidfile" "${launch[@]}" \
    </dev/null >"$logfile" 2>&1 9>&- &
  local pid="" deadline=$((SECONDS + 30))
  while [ -z "$pid" ] && [ $SECONDS -lt $deadline ]; do
    sleep 0.05
    pid=$(cat "$pidfile" 2>/dev/null)
  done
  [ -n "$pid" ] || { _agent_server_say "the server process did not start (log $logfile)"; return 1; }
  echo "$pid"
}

ensure_agent_server() {
  local state=${AGENT_SERVER_STATE_DIR:-/tmp/workspace-agent-server}
  local root=${WORKSPACE_TRIXIE_ROOT:-/opt/workspace-trixie}
  mkdir -p "$state" || { _agent_server_say "cannot create $state"; return 1; }
  command -v curl >/dev/null 2>&1 || ensure_packages curl || return 1
  (
    flock -w 1800 9 || { _agent_server_say "timed out waiting for $state/lock"; exit 1; }
    _agent_server_start "$state" "$root"
  ) 9>"$state/lock" || return 1
  # shellcheck disable=SC1091
  . "$state/server.env" && export AGENT_SERVER_URL AGENT_SERVER_SESSION_KEY AGENT_SERVER_WORKSPACE \
    AGENT_SERVER_PID
}

# Runs in a subshell holding the lock; leaves server.env describing a healthy server.
_agent_server_start() {
  local state=$1 root=$2
  if [ -f "$state/server.env" ]; then
    local AGENT_SERVER_URL AGENT_SERVER_SESSION_KEY AGENT_SERVER_PID AGENT_SERVER_WORKSPACE
    . "$state/server.env"
    _agent_server_alive "$AGENT_SERVER_URL" "$AGENT_SERVER_SESSION_KEY" "$AGENT_SERVER_PID" &&
      return 0
    _agent_server_stop_pid "$AGENT_SERVER_PID"
    rm -f "$state/server.env"
  fi

  local ws=${AGENT_SERVER_WORKSPACE:-$state/workspace}
  mkdir -p "$ws" && ws=$(cd "$ws" && pwd -P) || { _agent_server_say "cannot create $ws"; return 1; }
  agent_server_prepare "$state" "$root" || return 1

  local key
  key=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  local port pid url
  for _ in 1 2 3; do
    port=$(_agent_server_free_port)
    [ -n "$port" ] || { _agent_server_say "cannot find a free port"; return 1; }
    url=http://127.0.0.1:$port
    pid=$(_agent_server_spawn "$state/server.pid" "$state/server.log" "$port" "$key" "$ws" \
      "$state/server") || return 1
    local deadline=$((SECONDS + ${AGENT_SERVER_START_TIMEOUT:-120}))
    while _agent_server_running "$pid" && [ $SECONDS -lt $deadline ]; do
      if curl -fsS -m 2 -o /dev/null "$url/health" 2>/dev/null; then
        if _agent_server_alive "$url" "$key" "$pid"; then
          {
            printf 'AGENT_SERVER_URL=%q\n' "$url"
            printf 'AGENT_SERVER_SESSION_KEY=%q\n' "$key"
            printf 'AGENT_SERVER_PID=%q\n' "$pid"
            printf 'AGENT_SERVER_WORKSPACE=%q\n' "$ws"
          } >"$state/server.env"
          _agent_server_say "running at $url (pid $pid, $_agent_server_mode, log $state/server.log)"
          return 0
        fi
        _agent_server_say "the server at $url answers /health but refuses its session key"
        break
      fi
      sleep 0.2
    done
    _agent_server_stop_pid "$pid"
    if grep -q -i 'address already in use' "$state/server.log" 2>/dev/null; then continue; fi
    break
  done
  _agent_server_say "the server did not become healthy at $url; last lines of $state/server.log:"
  tail -n 20 "$state/server.log" >&2
  return 1
}

# Stops the process group PID leads: SIGTERM (and SIGCONT, in case it was paused with SIGSTOP),
# then SIGKILL after 10 s.
_agent_server_stop_pid() {
  local pid=$1
  _agent_server_running "$pid" || return 0
  _agent_server_sudo kill -TERM -- "-$pid" 2>/dev/null || _agent_server_sudo kill -TERM "$pid" 2>/dev/null
  _agent_server_sudo kill -CONT -- "-$pid" 2>/dev/null || _agent_server_sudo kill -CONT "$pid" 2>/dev/null
  for _ in $(seq 50); do
    _agent_server_running "$pid" || return 0
    sleep 0.2
  done
  _agent_server_sudo kill -KILL -- "-$pid" 2>/dev/null || _agent_server_sudo kill -KILL "$pid" 2>/dev/null
  sleep 0.2
}

stop_agent_server() {
  local state=${AGENT_SERVER_STATE_DIR:-/tmp/workspace-agent-server}
  [ -d "$state" ] || return 0
  (
    flock -w 60 9 || { _agent_server_say "timed out waiting for $state/lock"; exit 1; }
    if [ -f "$state/server.env" ]; then
      local AGENT_SERVER_PID=""
      . "$state/server.env"
      _agent_server_stop_pid "$AGENT_SERVER_PID"
      if _agent_server_running "$AGENT_SERVER_PID"; then
        _agent_server_say "pid $AGENT_SERVER_PID does not stop"; exit 1
      fi
      rm -f "$state/server.env"
    fi
  ) 9>"$state/lock" || return 1
  unset AGENT_SERVER_URL AGENT_SERVER_SESSION_KEY AGENT_SERVER_PID
}

# One more server, for callers that manage several (tests/servers/runtime_api/server.py does,
# through scripts/agent-server-instance). agent_server_prepare runs first (with
# AGENT_SERVER_STATE_DIR, so the venv is the one ensure_agent_server uses).
#   agent_server_instance_start PORT KEY WORKSPACE_DIR STATE_DIR [NAME=VALUE...]
#     prints the pid of the process group leader once it is spawned (not waiting for /health);
#     STATE_DIR gets server.pid, server.log and server/ (the server's own state).
#   agent_server_instance_stop PID   stops that process group and everything it started.
agent_server_instance_start() {
  if [ $# -lt 4 ]; then
    _agent_server_say "usage: agent_server_instance_start PORT KEY WORKSPACE_DIR STATE_DIR [NAME=VALUE...]"
    return 2
  fi
  local port=$1 key=$2 ws=$3 state=$4; shift 4
  case $port in '' | *[!0-9]*) _agent_server_say "bad port '$port'"; return 2 ;; esac
  [ -n "$key" ] || { _agent_server_say "empty key"; return 2; }
  local kv
  for kv in "$@"; do
    case $kv in [A-Za-z_]*=*) ;; *) _agent_server_say "bad environment entry '${kv%%=*}'"; return 2 ;; esac
  done
  mkdir -p "$ws" "$state" && ws=$(cd "$ws" && pwd -P) && state=$(cd "$state" && pwd -P) ||
    { _agent_server_say "cannot create $ws or $state"; return 1; }
  agent_server_prepare >&2 || return 1
  _agent_server_spawn "$state/server.pid" "$state/server.log" "$port" "$key" "$ws" \
    "$state/server" "$@"
}

agent_server_instance_stop() {
  local pid=${1:-}
  case $pid in '' | *[!0-9]*) _agent_server_say "bad pid '$pid'"; return 2 ;; esac
  _agent_server_stop_pid "$pid"
  if _agent_server_running "$pid"; then _agent_server_say "pid $pid does not stop"; return 1; fi
}
