# Sourced by the scripts: ensure_conan installs Conan 2 into a virtual environment of its own
# when it is not there yet, for the Conan packaging tests, and exports WORKSPACE_CONAN.
WORKSPACE_CONAN_VENV=/opt/workspace-conan-venv
WORKSPACE_CONAN_VERSION=2.34.0

ensure_conan() {
  local conan="$WORKSPACE_CONAN_VENV/bin/conan"
  if ! "$conan" --version 2>/dev/null | grep -q "Conan version $WORKSPACE_CONAN_VERSION"; then
    ensure_packages python3-venv python3-pip
    echo "== installing Conan $WORKSPACE_CONAN_VERSION in $WORKSPACE_CONAN_VENV"
    python3 -m venv "$WORKSPACE_CONAN_VENV" &&
      "$WORKSPACE_CONAN_VENV/bin/pip" install -q "conan==$WORKSPACE_CONAN_VERSION" || return 1
  fi
  export WORKSPACE_CONAN="$conan"
  "$conan" --version
}
