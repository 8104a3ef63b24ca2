#!/usr/bin/env bash
# The Debian package of the tree under test (tools/package): cpack builds the .deb
# from what is already built, dpkg -x unpacks it into a fresh temp dir (no
# maintainer script runs, nothing touches the system), and the test checks its
# files and control fields, runs every installed binary's --help, and starts the
# installed kvnode with the installed config (data dir and port overridden to
# temporary ones on 127.0.0.1) for a kvctl put/get round trip and a SIGTERM stop.
#
# usage: package_test.sh BUILD_DIR MAN_PAGES(ON|OFF)
# Exit 0 passed, 1 failed, 77 skipped (no cpack or dpkg-deb: not Debian).
# Every wait is bounded; the EXIT trap ends the node it started and removes the
# temp dir (kept, with the node's log, when KV_KEEP_TEST_DIRS is set).
# shellcheck disable=SC2015  # `check && pass || fail`: pass only echoes, it never fails
set -euo pipefail

build_dir=${1:?usage: package_test.sh BUILD_DIR MAN_PAGES}
man_pages=${2:?usage: package_test.sh BUILD_DIR MAN_PAGES}
build_dir=$(cd "$build_dir" && pwd)

# Ports 18400..18499: no other test or script uses them (process tests take
# 20000..31999, tools/dev 7001.. and 7101.., tools/bench 7200.., 7600.. and 17xxx).
PORT_FIRST=18400
PORT_COUNT=100
START_ATTEMPTS=5
READY_TIMEOUT_S=10
STOP_TIMEOUT_S=10

for tool in cpack dpkg-deb; do
    if ! command -v "$tool" >/dev/null; then
        echo "SKIPPED: $tool not found (the package is Debian's; tools/dev deps installs it)"
        exit 77
    fi
done

failures=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}
pass() { echo "ok: $*"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/kv-package-XXXXXX")
node_pid=""
cleanup() {
    if [[ -n $node_pid ]] && kill -0 "$node_pid" 2>/dev/null; then
        kill -KILL "$node_pid" 2>/dev/null || true
        wait "$node_pid" 2>/dev/null || true
    fi
    if [[ -n ${KV_KEEP_TEST_DIRS:-} ]]; then
        echo "kept $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

# ---- build the package ----------------------------------------------------------
started_s=$SECONDS
if ! cpack -G DEB --config "$build_dir/CPackConfig.cmake" -B "$work/cpack" >"$work/cpack.log" 2>&1; then
    cat "$work/cpack.log"
    echo "FAILED: cpack"
    exit 1
fi
deb=$(sed -n 's/^CPack: - package: \(.*\.deb\) generated\.$/\1/p' "$work/cpack.log")
[[ -f $deb ]] || { cat "$work/cpack.log"; echo "FAILED: no .deb in cpack's output"; exit 1; }
echo "built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB) in $((SECONDS - started_s)) s"

# ---- control fields and maintainer scripts ---------------------------------------
field() { dpkg-deb -f "$deb" "$1"; }
[[ $(field Package) == kvstore ]] && pass "Package: kvstore" || fail "Package is '$(field Package)'"
[[ -n $(field Version) ]] && pass "Version: $(field Version)" || fail "no Version"
[[ -n $(field Maintainer) ]] && pass "Maintainer: $(field Maintainer)" || fail "no Maintainer"
[[ -n $(field Description) ]] && pass "Description present" || fail "no Description"
depends=$(field Depends)
echo "Depends: $depends"
# dpkg-shlibdeps found the libraries kvnode links; postinst needs adduser.
for want in libc6 libstdc++6 libzmq5 liblmdb0 libboost-program-options adduser; do
    [[ $depends == *"$want"* ]] || fail "Depends lacks $want"
done
control="$work/control"
dpkg-deb -e "$deb" "$control"
if grep -qxF /etc/kvstore/kvnode.conf "$control/conffiles" 2>/dev/null; then
    pass "conffiles lists /etc/kvstore/kvnode.conf"
else
    fail "conffiles does not list /etc/kvstore/kvnode.conf"
fi
for script in postinst prerm postrm; do
    if [[ -x $control/$script ]] && bash -n "$control/$script"; then
        pass "$script is executable and parses"
    else
        fail "$script missing, not executable or does not parse"
    fi
done

# ---- files -------------------------------------------------------------------------
root="$work/root"
dpkg-deb -x "$deb" "$root"
unit=$(find "$root" -path '*/systemd/system/kvstore.service' -print -quit)
expected=(usr/bin/kvnode usr/bin/kvctl usr/bin/kvbench etc/kvstore/kvnode.conf)
if [[ $man_pages == ON ]]; then
    expected+=(usr/share/man/man1/kvnode.1.gz usr/share/man/man1/kvctl.1.gz
               usr/share/man/man1/kvbench.1.gz)
fi
for f in "${expected[@]}"; do
    [[ -f $root/$f ]] && pass "$f" || fail "$f missing"
done
[[ -n $unit ]] && pass "${unit#"$root"/}" || fail "no systemd/system/kvstore.service"
# Only the three plain binaries: no _asan variant, fuzz target or test tool.
bins=$(find "$root/usr/bin" -mindepth 1 -printf '%f\n' | sort | tr '\n' ' ')
[[ $bins == "kvbench kvctl kvnode " ]] && pass "usr/bin holds $bins" || fail "usr/bin holds: $bins"
if [[ $man_pages == ON ]]; then
    for page in "$root"/usr/share/man/man1/*.1.gz; do
        zcat "$page" | grep -q '^\.TH' && pass "$(basename "$page") is a man page" ||
            fail "$(basename "$page") is not a man page"
    done
else
    echo "note: built without help2man, so no man pages to check"
fi

# ---- binaries ----------------------------------------------------------------------
bin="$root/usr/bin"
for tool in kvnode kvctl kvbench; do
    if "$bin/$tool" --help >"$work/$tool.help" 2>&1 && [[ -s $work/$tool.help ]]; then
        pass "$tool --help exits 0"
    else
        fail "$tool --help: $(head -3 "$work/$tool.help")"
    fi
    version=$("$bin/$tool" --version 2>&1) || true
    [[ $version == "$tool (kvstore) $(field Version)" ]] && pass "$tool --version: $version" ||
        fail "$tool --version printed '$version'"
done

# ---- the config file ---------------------------------------------------------------
# Every option it shows, set or commented (a line '# name = value'), is one kvnode
# takes; a commented one shows kvnode's default wherever --help states one.
conf="$root/etc/kvstore/kvnode.conf"
shown=0
while IFS= read -r line; do
    if [[ $line =~ ^(#\ )?([a-z][a-z0-9-]*)\ =\ (.*)$ ]]; then
        commented=${BASH_REMATCH[1]} name=${BASH_REMATCH[2]} value=${BASH_REMATCH[3]}
        shown=$((shown + 1))
        help_line=$(grep -E -- "^  --$name( arg)?( |$)" "$work/kvnode.help" || true)
        if [[ -z $help_line ]]; then
            fail "kvnode.conf shows '$name', which kvnode --help does not list"
            continue
        fi
        if [[ -n $commented && $help_line =~ \(=([^\)]*)\) ]]; then
            default=${BASH_REMATCH[1]}
            [[ $value == true ]] && value=1
            [[ $value == false ]] && value=0
            [[ $value == "$default" ]] ||
                fail "kvnode.conf shows '# $name = $value' but the default is $default"
        fi
    fi
done <"$conf"
((shown >= 10)) && pass "kvnode.conf: $shown options, all known to kvnode" ||
    fail "kvnode.conf shows only $shown options"
grep -qx 'data-dir = /var/lib/kvstore' "$conf" && pass "data-dir = /var/lib/kvstore" ||
    fail "kvnode.conf does not set data-dir = /var/lib/kvstore"
grep -qE '^listen = tcp://127\.0\.0\.1:' "$conf" && pass "listens on loopback" ||
    fail "kvnode.conf does not listen on 127.0.0.1"

# ---- the unit ----------------------------------------------------------------------
if [[ -n $unit ]]; then
    for want in 'ExecStart=/usr/bin/kvnode --config /etc/kvstore/kvnode.conf' 'User=kvstore' \
        'StateDirectory=kvstore' 'Restart=on-failure' 'NoNewPrivileges=yes' \
        'ProtectSystem=strict'; do
        grep -qxF "$want" "$unit" || fail "kvstore.service lacks '$want'"
    done
    # verify wants ExecStart's binary on this machine: a copy of the unit points it at
    # the unpacked one (the only change). --man=no: the man pages are not installed
    # here (checked above). A warning about the unit fails too (unknown keys only
    # warn); warnings about the host's own units are shown, not held against it.
    mkdir -p "$work/unit"
    sed "s|^ExecStart=/usr/bin/kvnode |ExecStart=$root/usr/bin/kvnode |" "$unit" \
        >"$work/unit/kvstore.service"
    if ! command -v systemd-analyze >/dev/null; then
        echo "SKIPPED check: systemd-analyze not found, kvstore.service not verified"
    elif systemd-analyze verify --man=no "$work/unit/kvstore.service" >"$work/verify.log" 2>&1 &&
        ! grep -q 'kvstore\.service' "$work/verify.log"; then
        pass "systemd-analyze verify kvstore.service"
        sed 's/^/    (host) /' "$work/verify.log"
    elif grep -qiE 'Failed to (connect|initialize|allocate|set up)|not been booted|Operation not permitted' \
        "$work/verify.log"; then
        echo "SKIPPED check: systemd-analyze verify cannot run here (a container?):"
        sed 's/^/    /' "$work/verify.log"
    else
        fail "systemd-analyze verify kvstore.service:"
        sed 's/^/    /' "$work/verify.log"
    fi
fi

# ---- run the installed node with the installed config ------------------------------
export KV_KEY_FILE=""  # no credentials of the developer's: protected mode, plain ZMTP
kvctl() { timeout 5 "$bin/kvctl" --no-key --node "$endpoint" "$@"; }
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

cursor=$(($$ % PORT_COUNT))
started=0
for ((attempt = 0; attempt < START_ATTEMPTS && started == 0; attempt++)); do
    port=""
    for ((probe = 0; probe < PORT_COUNT; probe++)); do
        candidate=$((PORT_FIRST + (cursor + probe) % PORT_COUNT))
        if ! port_in_use "$candidate"; then
            port=$candidate
            cursor=$((cursor + probe + 1))
            break
        fi
    done
    [[ -n $port ]] || break
    endpoint="tcp://127.0.0.1:$port"
    data="$work/data-$port"
    "$bin/kvnode" --config "$conf" --data-dir "$data" --listen "$endpoint" >"$work/node.log" 2>&1 &
    node_pid=$!
    deadline=$((SECONDS + READY_TIMEOUT_S))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$node_pid" 2>/dev/null; then
            wait "$node_pid" 2>/dev/null || true
            node_pid=""
            break
        fi
        if kvctl status >/dev/null 2>&1; then
            started=1
            break
        fi
        sleep 0.1
    done
    if ((started == 0)) && [[ -n $node_pid ]]; then
        kill -KILL "$node_pid" 2>/dev/null || true
        wait "$node_pid" 2>/dev/null || true
        node_pid=""
    fi
    if ((started == 0)) && ! grep -qi 'address already in use' "$work/node.log"; then
        break  # not a port race: no point in another port
    fi
done
if ((started == 0)); then
    echo "node log:"
    sed 's/^/    /' "$work/node.log"
    echo "FAILED: the installed kvnode did not answer with the installed config"
    exit 1
fi
pass "kvnode --config kvnode.conf answers on $endpoint (data in $data)"
grep -q 'mode protected' "$work/node.log" && pass "protected mode (loopback, no keys)" ||
    fail "the start log does not say 'mode protected'"

if kvctl put package-test-key package-test-value; then
    pass "kvctl put"
else
    fail "kvctl put exited $?"
fi
got=$(kvctl get package-test-key 2>&1) || true
[[ $got == package-test-value ]] && pass "kvctl get returns the value" ||
    fail "kvctl get printed '$got'"

stop_started_s=$SECONDS
kill -TERM "$node_pid"
deadline=$((SECONDS + STOP_TIMEOUT_S))
while kill -0 "$node_pid" 2>/dev/null && ((SECONDS < deadline)); do
    sleep 0.1
done
if kill -0 "$node_pid" 2>/dev/null; then
    fail "kvnode still runs ${STOP_TIMEOUT_S} s after SIGTERM"
else
    code=0
    wait "$node_pid" || code=$?
    node_pid=""
    ((code == 0)) && pass "kvnode stopped on SIGTERM with exit 0 in $((SECONDS - stop_started_s)) s" ||
        fail "kvnode exited $code after SIGTERM"
fi

if ((failures > 0)); then
    echo "node log:"
    sed 's/^/    /' "$work/node.log"
    echo "FAILED: $failures check(s), in $((SECONDS - started_s)) s"
    exit 1
fi
echo "PASSED in $((SECONDS - started_s)) s"
