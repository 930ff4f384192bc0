#!/usr/bin/env bash
# The README's two commands: installs missing Debian packages (fast when nothing is missing),
# builds with Meson into build/ (release), then runs the bouncer (`run`) or every test (`test`).
#   tools/setup.sh run    build and run the bouncer with conf/aloha-bouncer.conf on 127.0.0.1:8080
#   tools/setup.sh test   build and run the unit and integration suites
#   tools/setup.sh deps   only install the packages
# Extra Meson options may be passed in ALOHA_MESON_ARGS (CI adds -Dwerror=true).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(g++ meson ninja-build pkg-config libuv1-dev libmbedtls-dev libnghttp2-dev libsqlite3-dev
          rapidjson-dev doctest-dev node-llhttp openssl nodejs)

install_deps() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  # node is only needed by one interoperability test; an existing node (e.g. from nodesource) is fine.
  if command -v node >/dev/null 2>&1; then
    local keep=(); for p in "${missing[@]}"; do [ "$p" = nodejs ] || keep+=("$p"); done; missing=("${keep[@]}")
  fi
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "setup: installing ${missing[*]}" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

build() {
  local dir=$1; shift
  if [ ! -f "$dir/build.ninja" ]; then
    # shellcheck disable=SC2086
    meson setup "$dir" "$@" ${ALOHA_MESON_ARGS:-}
  fi
  ninja -C "$dir"
}

case "${1:-}" in
  deps) install_deps ;;
  run)
    install_deps
    build build --buildtype=release
    mkdir -p var
    exec build/aloha-bouncer serve --config conf/aloha-bouncer.conf ;;
  test)
    install_deps
    build build --buildtype=release
    meson test -C build --print-errorlogs ;;
  *) echo "usage: tools/setup.sh run|test|deps" >&2; exit 2 ;;
esac
