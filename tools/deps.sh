#!/bin/sh
# Installs the Debian 12 packages Vigil needs to build and test, skipping
# those already present. Idempotent; needs root (or sudo) only when
# something is missing.
set -eu

pkgs="build-essential cmake pkg-config git python3
      clang libclang-rt-14-dev clang-format
      protobuf-c-compiler libprotobuf-c-dev
      libpcre2-dev libssl-dev libjansson-dev liblmdb-dev
      libnng-dev libmbedtls-dev libcyaml-dev libcurl4-openssl-dev openssl
      libcmocka-dev"

missing=""
for p in $pkgs; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
# node and npm run the independent webhook verifier of the tests; a machine
# may have them from elsewhere than Debian's packages
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
if [ -z "$missing" ]; then
    echo "deps: all present"
    exit 0
fi
echo "deps: installing$missing"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo=sudo
    else
        echo "deps: missing packages:$missing; run this script as root" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086 # the package list is meant to split
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "deps: done"
