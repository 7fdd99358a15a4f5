#!/usr/bin/env bash
# Installs every Debian package that building, running and testing Magpie needs; `install-deps.sh bench` adds
# the peers only `make bench` runs.
# The one list of dependencies: `make demo`, `make test`, `make bench` and .ci/run all come through here.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config clang-14 libclang-rt-14-dev
  libboost-dev libboost-system-dev libssl-dev openssl libsqlite3-dev sqlite3 libsodium-dev libzstd-dev
  libtomlplusplus-dev libspdlog-dev libfmt-dev libcli11-dev nlohmann-json3-dev libc-ares-dev
  libgtest-dev libgmock-dev
  libpq-dev postgresql
  libgmime-3.0-dev libicu-dev
  python3 python3-pytest python3-pytest-xdist swaks libnet-ssleay-perl isync strace
  dovecot-imapd dnsmasq-base postfix iproute2 procps haproxy  # haproxy: the PROXY protocol's real balancer
  unbound ldnsutils
  python3-dkim python3-nacl publicsuffix python3-websocket  # python3-websocket: the JMAP WebSocket (RFC 8887) e2e client
  libxml2-dev media-types
  nodejs chromium fonts-dejavu-core  # node and npm: the webmail's build and browser tests, the third-party JMAP client test
)
if [ "${1:-}" = bench ]; then
  # Cyrus (its httpd serves JMAP) is the JMAP peer of scenario 4. No test uses it, and with its libraries
  # (libclamav, libxapian, ...) it is a large download, so a new CI machine goes without it. Never
  # cyrus-imapd: it conflicts with dovecot-imapd (both provide imap-server) and apt would remove Dovecot.
  packages+=(cyrus-common cyrus-caldav sasl2-bin)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# The webmail's build (web/, Vite) needs npm. Debian's nodejs ships it as a package of its own; a nodejs
# from elsewhere (the machine image's 20.x, which Vite 8 needs: Debian 12's 18.x is too old for it) brings
# its own npm, which Debian's npm package would conflict with.
command -v npm >/dev/null 2>&1 || missing+=(npm)
((${#missing[@]} == 0)) && exit 0

echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
# Postfix is a test peer and benchmark peer only: installed unconfigured, never started as a system service.
echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
