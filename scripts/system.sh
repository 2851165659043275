# Debian packages the project uses beyond Python: sourced by demo.sh and test.sh.
# Usage: need BINARY PACKAGE "what fails without it" ...; then install_needed.
NEEDED=()

need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  NEEDED+=("$2|$3")
}

install_needed() {
  [ ${#NEEDED[@]} -eq 0 ] && return 0
  local packages=() entry
  for entry in "${NEEDED[@]}"; do packages+=("${entry%%|*}"); done
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    # One apt-get update for all of them: it is the slow part.
    if (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null); then
      return 0
    fi
  fi
  for entry in "${NEEDED[@]}"; do
    echo "warning: Debian package ${entry%%|*} is not installed and cannot be installed here: ${entry#*|}" >&2
  done
}
