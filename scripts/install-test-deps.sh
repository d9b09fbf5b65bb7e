#!/usr/bin/env bash
# Installs the Debian packages the tests need, if they are missing.
set -euo pipefail

need=()
command -v coap-client-notls >/dev/null || need+=(libcoap3-bin)
command -v etcd >/dev/null || need+=(etcd-server)
command -v xxd >/dev/null || need+=(xxd)
command -v chromium >/dev/null || need+=(chromium chromium-driver)
[ ${#need[@]} -eq 0 ] && exit 0

echo "installing ${need[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
