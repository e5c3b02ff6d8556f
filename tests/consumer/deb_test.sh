#!/usr/bin/env bash
# deb_test.sh TREE
# The Debian packages end to end on this machine (docs/OPERATIONS.md, "Packages"): cpack builds
# pacerd and libpacer-dev from TREE (tests/consumer/release_tree.sh made it), `dpkg -i` installs
# them, the installed pacerd checks the installed /etc/pacerd/pacerd.toml, serves one decision
# over HTTP as the `pacerd` user, tests/consumer builds against the installed libpacer-dev with
# find_package(pacer), and `dpkg --purge` removes both, leaving no file, unit link or user.
# Installs into the real system (/usr, /etc, /lib, the user database): CTest runs it under the
# resource lock `system_packages`; whatever happens, the exit trap purges what it installed.
# Exit 77 (skipped): not root, or a pacerd package, user, /etc/pacerd or /usr/include/pacer
# is already there.
set -euo pipefail
tree=$(cd "$1" && pwd)
consumer_source=$(cd "$(dirname "$0")" && pwd)
packages=(pacerd libpacer-dev)

skip() { echo "skipped: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "dpkg -i needs root"
for package in "${packages[@]}"; do
  if dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed'; then
    skip "the package $package is installed on this machine; this test would remove it"
  fi
done
getent passwd pacerd >/dev/null && skip "a user pacerd exists; this test would remove it"
for path in /etc/pacerd /usr/include/pacer; do
  [ -e "$path" ] && skip "$path exists; this test would remove it"
done

scratch=$(mktemp -d)
pacerd_pid=""
installed=0
cleanup() {
  local status=$?
  set +e
  if [ -n "$pacerd_pid" ]; then
    kill "$pacerd_pid" 2>/dev/null
    wait "$pacerd_pid" 2>/dev/null
  fi
  if [ "$installed" -eq 1 ]; then
    dpkg --purge "${packages[@]}" >/dev/null 2>&1 || echo "cleanup: dpkg --purge failed" >&2
  fi
  rm -rf "$scratch"
  exit "$status"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
step_start=$(date +%s)
step() { echo "== $1 ($(( $(date +%s) - step_start )) s)"; }

step "cpack: the .deb files"
(cd "$tree" && cpack -G DEB -B "$scratch/debs" >"$scratch/cpack.log" 2>&1) ||
  { cat "$scratch/cpack.log"; fail "cpack"; }
pacerd_deb=$(ls "$scratch"/debs/pacerd_*.deb)
dev_deb=$(ls "$scratch"/debs/libpacer-dev_*.deb)
for deb in "$pacerd_deb" "$dev_deb"; do
  echo "$(basename "$deb"):"
  dpkg-deb --field "$deb" Package Version Architecture Depends | sed 's/^/  /'
done
depends=$(dpkg-deb --field "$pacerd_deb" Depends)
for needed in libc6 libstdc++6 libssl3 libhiredis adduser; do
  grep -q "$needed" <<<"$depends" || fail "pacerd does not depend on $needed: $depends"
done
depends=$(dpkg-deb --field "$dev_deb" Depends)
for needed in libboost-system-dev libhiredis-dev libssl-dev libfmt-dev libspdlog-dev; do
  grep -q "$needed" <<<"$depends" || fail "libpacer-dev does not depend on $needed: $depends"
done
dpkg-deb --control "$pacerd_deb" "$scratch/control"
grep -qx /etc/pacerd/pacerd.toml "$scratch/control/conffiles" ||
  fail "/etc/pacerd/pacerd.toml is not a conffile"
for deb in "$pacerd_deb" "$dev_deb"; do
  package=$(dpkg-deb --field "$deb" Package)
  dpkg-deb --extract "$deb" "$scratch/$package"
  grep -q '^License: MIT$' "$scratch/$package/usr/share/doc/$package/copyright" ||
    fail "$package: no MIT /usr/share/doc/$package/copyright"
done

step "dpkg -i"
installed=1
dpkg -i "$pacerd_deb" "$dev_deb" >"$scratch/dpkg.log" 2>&1 || { cat "$scratch/dpkg.log"; fail "dpkg -i"; }
dpkg-query -W -f='${Package} ${Version} ${Status}\n' "${packages[@]}"
dpkg-query -W -f='${Status}' pacerd | grep -q 'ok installed' || fail "pacerd not configured"
getent passwd pacerd >/dev/null || fail "postinst made no pacerd user"
grep -q '^ExecStart=/usr/bin/pacerd --config /etc/pacerd/pacerd.toml$' \
  /lib/systemd/system/pacerd.service || fail "the unit does not run /usr/bin/pacerd"
grep -q '^User=pacerd$' /lib/systemd/system/pacerd.service || fail "the unit's User is not pacerd"
# A second configure (dpkg-reconfigure, an upgrade) must find the user and go on.
dpkg-reconfigure pacerd >/dev/null 2>&1 || fail "postinst is not idempotent"

step "the installed pacerd"
/usr/bin/pacerd --version
/usr/bin/pacerd --check-config /etc/pacerd/pacerd.toml || fail "pacerd --check-config"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$scratch/pacerd.toml" <<EOF
[server]
listen = "127.0.0.1:$port"
threads = 1

[store]
url = "memory://"

[[policy]]
name = "api"
rates = [{ limit = "10/1m", burst = 1 }]
identity = "client_ip"
EOF
chmod 755 "$scratch"
chmod 644 "$scratch/pacerd.toml"
runuser -u pacerd -- /usr/bin/pacerd --config "$scratch/pacerd.toml" >"$scratch/pacerd.log" 2>&1 &
pacerd_pid=$!
for _ in $(seq 100); do
  grep -q 'event=started' "$scratch/pacerd.log" && break
  kill -0 "$pacerd_pid" 2>/dev/null || { cat "$scratch/pacerd.log"; fail "pacerd exited"; }
  sleep 0.1
done
answer=$(curl -sS --max-time 5 "http://127.0.0.1:$port/v1/check" \
  -d '{"policy": "api", "key": "user:42", "cost": 1}')
echo "POST /v1/check: $answer"
grep -q '"allowed":true' <<<"$answer" || { cat "$scratch/pacerd.log"; fail "no decision"; }
kill "$pacerd_pid"
wait "$pacerd_pid" || true
pacerd_pid=""

step "a consumer of the installed libpacer-dev"
cmake -S "$consumer_source" -B "$scratch/consumer" -G Ninja >"$scratch/consumer.log" 2>&1 ||
  { cat "$scratch/consumer.log"; fail "consumer configure"; }
grep -q '^pacer_DIR:PATH=/usr/lib/' "$scratch/consumer/CMakeCache.txt" ||
  fail "the consumer did not find the installed package: $(grep '^pacer_DIR' "$scratch/consumer/CMakeCache.txt")"
cmake --build "$scratch/consumer" >>"$scratch/consumer.log" 2>&1 ||
  { cat "$scratch/consumer.log"; fail "consumer build"; }
"$scratch/consumer/consumer" || fail "the consumer's checks"

step "dpkg --purge"
dpkg -L "${packages[@]}" | sort -u >"$scratch/files"
dpkg --purge "${packages[@]}" >"$scratch/purge.log" 2>&1 || { cat "$scratch/purge.log"; fail "purge"; }
installed=0
left=""
while read -r path; do
  # Directories other packages share (/usr, /etc, /usr/include, ...) stay; files must not.
  [ -e "$path" ] && [ ! -d "$path" ] && left+="$path "
done <"$scratch/files"
[ -z "$left" ] || fail "left after purge: $left"
[ ! -e /etc/pacerd ] || fail "/etc/pacerd left after purge"
[ ! -e /usr/include/pacer ] || fail "/usr/include/pacer left after purge"
[ ! -e /etc/systemd/system/multi-user.target.wants/pacerd.service ] || fail "unit link left"
! getent passwd pacerd >/dev/null || fail "the pacerd user is left after purge"
! getent group pacerd >/dev/null || fail "the pacerd group is left after purge"
step "done: built, installed, ran, linked and purged"
