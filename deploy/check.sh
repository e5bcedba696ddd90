#!/usr/bin/env bash
# Checks every file in deploy/ with the real tools; exits non-zero and names each failure.
# docs/operating.md#install says what the files are for.
#
# Installs what it needs from Debian when missing, because each check runs the real tool:
#   systemd      systemd-analyze: `security --offline` exposure of the unit (≤ 2.0),
#                `verify`, `syscall-filter`; systemd-sysusers/-tmpfiles for the user files
#   nginx        `nginx -t -c` on deploy/nginx/peluit.conf, then a real proxy run
#   libnginx-mod-http-headers-more-filter   the config loads it to drop Server and Date
#   openssl      a throwaway self-signed certificate for nginx
#   tor          `tor --verify-config -f` on deploy/tor/torrc (v3, proof-of-work defence)
#   strace       records every system call the server makes, compared with the unit's
#                SystemCallFilter, and any request for writable+executable memory
#   age, curl, jq   seal a file to the demo's keys, talk to the server, read demo.json
#   binutils     readelf: the binary must not ask for an executable stack
# The server itself is built with cargo (debug profile, --locked), as the test command does.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

failures=()
fail() {
  printf 'FAIL: %s\n' "$*" >&2
  failures+=("$*")
}
pass() { printf 'ok:   %s\n' "$*"; }
step() { printf '\n==> %s\n' "$*"; }

need=()
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
[ -f /usr/lib/nginx/modules/ngx_http_headers_more_filter_module.so ] ||
  need+=(libnginx-mod-http-headers-more-filter)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v tor >/dev/null 2>&1 || [ -x /usr/sbin/tor ] || need+=(tor)
command -v strace >/dev/null 2>&1 || need+=(strace)
command -v age >/dev/null 2>&1 || need+=(age)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v jq >/dev/null 2>&1 || need+=(jq)
command -v readelf >/dev/null 2>&1 || need+=(binutils)
if [ ${#need[@]} -gt 0 ]; then
  step "installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }; then
    echo "FAIL: cannot install ${need[*]} with apt-get; every check below needs them" >&2
    exit 1
  fi
fi
export PATH="$PATH:/usr/sbin:/sbin"

work=$(mktemp -d)
server_pid=""
strace_pid=""
nginx_pid_file="$work/nginx/nginx.pid"
cleanup() {
  if [ -f "$nginx_pid_file" ]; then kill -TERM "$(cat "$nginx_pid_file")" 2>/dev/null; fi
  if [ -n "$server_pid" ]; then kill -TERM "$server_pid" 2>/dev/null; fi
  if [ -n "$strace_pid" ]; then wait "$strace_pid" 2>/dev/null; fi
  rm -rf "$work"
}
trap cleanup EXIT

unit=deploy/systemd/peluit-server.service

# ---------------------------------------------------------------------------------------
step "systemd unit: exposure (systemd-analyze security --offline=true, must be <= 2.0)"
if ! report=$(systemd-analyze security --offline=true "$unit" 2>&1); then
  fail "systemd-analyze security could not analyse $unit: $report"
else
  exposure=$(grep -o 'Overall exposure level for [^:]*: [0-9.]*' <<<"$report" | awk '{print $NF}')
  if [ -z "$exposure" ]; then
    fail "systemd-analyze printed no exposure level for $unit"
  elif awk -v e="$exposure" 'BEGIN { exit !(e <= 2.0) }'; then
    pass "exposure $exposure (<= 2.0)"
  else
    fail "exposure $exposure is above 2.0"
    grep '✗' <<<"$report" >&2
  fi
fi
for directive in 'User=peluit' 'ProtectSystem=strict' 'NoNewPrivileges=yes' 'PrivateTmp=yes' \
  'RestrictAddressFamilies=' 'SystemCallFilter=@system-service' 'LimitCORE=0' \
  'MemoryDenyWriteExecute=yes' 'StateDirectory=peluit' 'CapabilityBoundingSet=$' \
  'StandardError=append:/var/log/peluit/server.log'; do
  if grep -q "^$directive" "$unit"; then pass "unit sets $directive"; else fail "unit lacks $directive"; fi
done

step "building peluit-server (cargo build --locked)"
if cargo build --locked -q -p peluit-server --bin peluit-server; then
  binary="${CARGO_TARGET_DIR:-$repo/target}/debug/peluit-server"
  pass "built $binary"
else
  fail "cargo build -p peluit-server failed"
  binary=""
fi

step "systemd unit: systemd-analyze verify, sysusers and tmpfiles"
if [ -n "$binary" ]; then
  mkdir -p "$work/unit"
  sed "s#^ExecStart=/usr/local/bin/peluit-server #ExecStart=$binary #" "$unit" >"$work/unit/peluit-server.service"
  if out=$(systemd-analyze verify --man=no "$work/unit/peluit-server.service" 2>&1 | grep -v 'Failed to parse system call, ignoring'); [ -z "$out" ]; then
    pass "systemd-analyze verify"
  else
    # verify exits non-zero for units it loads besides ours; judge by what it says of ours.
    if grep -q 'peluit-server.service' <<<"$out"; then fail "systemd-analyze verify: $out"; else pass "systemd-analyze verify"; fi
  fi
fi
mkdir -p "$work/root/etc"
if systemd-sysusers --root="$work/root" "$repo/deploy/systemd/peluit.sysusers" >/dev/null 2>&1 &&
  grep -q '^peluit:x:[0-9]*:[0-9]*:.*:/var/lib/peluit:/usr/sbin/nologin$' "$work/root/etc/passwd"; then
  pass "sysusers makes the peluit user"
else
  fail "systemd-sysusers cannot apply deploy/systemd/peluit.sysusers"
fi
if systemd-tmpfiles --root="$work/root" --create "$repo/deploy/systemd/peluit.tmpfiles" >/dev/null 2>&1 &&
  [ "$(stat -c '%a' "$work/root/var/log/peluit")" = 750 ]; then
  pass "tmpfiles makes /var/log/peluit (0750)"
else
  fail "systemd-tmpfiles cannot apply deploy/systemd/peluit.tmpfiles"
fi

# ---------------------------------------------------------------------------------------
step "the binary under the unit's memory rule and system-call filter"
if [ -n "$binary" ]; then
  if readelf -lW "$binary" | grep GNU_STACK | grep -q 'RWE'; then
    fail "$binary asks for an executable stack (MemoryDenyWriteExecute would stop it)"
  else
    pass "no executable stack"
  fi
fi

# prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN) is the kernel's own form of
# MemoryDenyWriteExecute; it is inherited through fork and exec, so the server and every
# library it loads run under it. perl-base is in every Debian install.
case "$(uname -m)" in
  x86_64) prctl_nr=157 ;;
  aarch64) prctl_nr=167 ;;
  *) prctl_nr="" ;;
esac

expand_filter() {
  local name
  systemd-analyze syscall-filter "$1" 2>/dev/null | awk 'NR > 1 && $1 !~ /^#/ { print $1 }' |
    while read -r name; do
      case "$name" in
        @*) expand_filter "$name" ;;
        *) echo "$name" ;;
      esac
    done
}

base=""
if [ -z "$binary" ]; then
  fail "no binary to run"
elif [ -z "$prctl_nr" ]; then
  fail "no prctl system call number known for $(uname -m); cannot check MemoryDenyWriteExecute"
elif ! perl -e "syscall($prctl_nr, 65, 1, 0, 0, 0) == 0 or die" 2>/dev/null; then
  fail "this kernel ($(uname -r)) has no PR_SET_MDWE (Linux 6.3+); cannot check MemoryDenyWriteExecute here"
else
  mkfifo "$work/server.out"
  PELUIT_POW_BITS=4 perl -e "syscall($prctl_nr, 65, 1, 0, 0, 0) == 0 or die \"prctl: \$!\"; exec { \$ARGV[0] } @ARGV or die" \
    strace -f -qq -o "$work/trace" -- "$binary" demo --listen 127.0.0.1:0 --dir "$work/demo" \
    >"$work/server.out" 2>"$work/server.err" &
  strace_pid=$!
  ready=""
  exec 8<"$work/server.out"
  while IFS= read -r -t 120 line <&8; do
    if [ "$line" = "Stop with Ctrl-C." ]; then
      ready=yes
      break
    fi
  done
  server_pid=$(pgrep -P "$strace_pid" -x peluit-server || true)
  if [ -z "$ready" ] || [ -z "$server_pid" ]; then
    fail "the demo server did not start under MDWE and strace: $(tail -5 "$work/server.err")"
  else
    base=$(jq -r .page_url "$work/demo/demo.json")
    inst=$(jq -r .institution "$work/demo/demo.json")
    api="${base}api/v1/institutions/$inst"
    token=$(grep -v '^#' "$work/demo/investigator.token" | head -1)
    mapfile -t recipients < <(grep -o 'age1[a-z0-9]*' "$work/demo/manifest.json" | sort -u)
    age_args=()
    for r in "${recipients[@]}"; do age_args+=(-r "$r"); done
    echo "laporan uji" >"$work/small.txt"
    head -c 3000000 /dev/urandom >"$work/big.bin"
    age "${age_args[@]}" -o "$work/small.age" "$work/small.txt"
    age "${age_args[@]}" -o "$work/big.age" "$work/big.bin"
    expect() { # expect CODE WHAT curl-args…
      local want=$1 what=$2 got
      shift 2
      got=$(curl -s -o /dev/null -w '%{http_code}' "$@")
      if [ "$got" = "$want" ]; then pass "$what ($got)"; else fail "$what: HTTP $got, expected $want"; fi
    }
    expect 200 "the page" "$base"
    expect 201 "a small bring-your-own file (case, envelope, durable commit)" \
      -F "institution=$inst" -F "file=@$work/small.age" "${base}submit-file"
    expect 201 "a 3 MB bring-your-own file (spool, upload file)" \
      -F "institution=$inst" -F "file=@$work/big.age" "${base}submit-file"
    size=$(stat -c %s "$work/big.age")
    upload=$(curl -s -H 'content-type: application/json' -d "{\"version\":1,\"sealed_size\":$size}" "$api/uploads" | jq -r .upload)
    expect 200 "a streamed upload" -X PUT --data-binary "@$work/big.age" "$api/uploads/$upload?offset=0"
    expect 200 "its completion" -X POST "$api/uploads/$upload/complete"
    expect 200 "an export" -H "authorization: Bearer $token" "$api/export?since=0"
  fi
fi

# ---------------------------------------------------------------------------------------
step "nginx: nginx -t -c deploy/nginx/peluit.conf with a throwaway certificate"
conf=deploy/nginx/peluit.conf
mkdir -p "$work/nginx"
if openssl req -x509 -newkey ed25519 -nodes -days 2 -subj /CN=lapor.example.go.id \
  -keyout "$work/nginx/privkey.pem" -out "$work/nginx/fullchain.pem" >/dev/null 2>&1; then
  sed -e "s#/etc/peluit/tls/#$work/nginx/#g" "$conf" >"$work/nginx/tested.conf"
  if out=$(nginx -t -q -e stderr -c "$work/nginx/tested.conf" 2>&1); then
    pass "nginx -t accepts the configuration"
  else
    fail "nginx -t: $out"
  fi
else
  fail "openssl cannot make a test certificate"
fi

step "nginx: no client address in any log, no forwarding headers, limits of docs/api.md"
code=$(sed -e 's/#.*//' "$conf")
for variable in remote_addr binary_remote_addr realip_remote_addr proxy_add_x_forwarded_for \
  http_x_forwarded_for http_x_real_ip http_user_agent http_referer; do
  if grep -q "\$$variable" <<<"$code"; then fail "nginx config uses \$$variable"; fi
done
if grep -Eq '^\s*access_log\s' <<<"$code" && ! grep -E '^\s*access_log\s' <<<"$code" | grep -vq 'access_log off;'; then
  pass "every access_log is off"
else
  fail "an access_log is not off (or none is set, and nginx's default logs client addresses)"
fi
if grep -E '^\s*log_format\s' <<<"$code" | grep -q .; then
  fail "a log_format is defined; keep access logs off"
fi
if [ "$(grep -cE '^\s*error_log\s' <<<"$code")" -ge 1 ] && ! grep -E '^\s*error_log\s' <<<"$code" | grep -vq 'emerg;'; then
  pass "every error_log keeps only emerg (lower levels carry \"client: <address>\")"
else
  fail "an error_log logs below emerg, or none is set"
fi
for rule in 'proxy_set_header X-Forwarded-For "";' 'proxy_set_header X-Real-IP "";' \
  'proxy_set_header Forwarded "";' 'server_tokens off;' 'more_clear_headers Server Date;' \
  'proxy_request_buffering off;' 'proxy_max_temp_file_size 0;' 'client_max_body_size 2m;' \
  'client_max_body_size 4363145232;' 'client_max_body_size 64m;' 'add_header Onion-Location '; do
  if grep -qF "$rule" <<<"$code"; then pass "nginx: $rule"; else fail "nginx config lacks: $rule"; fi
done
# The limits above are the server's defaults; fail if the docs change without the proxy.
grep -q '| declared sealed upload | protocol maximum (4,363,145,232 bytes) |' docs/api.md &&
  grep -q '| ordinary JSON body (reports, follow-ups) | 2 MiB |' docs/api.md &&
  grep -q '| reply bundle (read into memory, then checked) | 64 MiB |' docs/api.md ||
  fail "docs/api.md#limits changed: update client_max_body_size in $conf"

step "nginx: a real run in front of the demo server"
if [ -n "$base" ] && [ -f "$work/nginx/tested.conf" ]; then
  upstream=${base#http://}
  upstream=${upstream%/}
  tls_port=$((20000 + RANDOM % 20000))
  sed -e "s#127.0.0.1:8080#$upstream#" \
    -e "s#listen 443 ssl http2 default_server;#listen 127.0.0.1:$tls_port ssl http2 default_server;#" \
    -e "s#listen 80 default_server;#listen 127.0.0.1:$((tls_port + 1)) default_server;#" \
    -e '/listen \[::\]/d' -e "s#^pid .*#pid $nginx_pid_file;#" -e 's#^user .*##' \
    "$work/nginx/tested.conf" >"$work/nginx/run.conf"
  # In daemon mode nginx has bound its sockets when this command returns.
  if nginx -e stderr -c "$work/nginx/run.conf" 2>"$work/nginx/err"; then
    proxy="https://127.0.0.1:$tls_port"
    headers=$(curl -sk -D - -o /dev/null -H 'X-Forwarded-For: 203.0.113.7' "$proxy/")
    grep -qi '^HTTP/2 200' <<<"$headers" && pass "the page through nginx" || fail "the page through nginx: $headers"
    grep -qi '^onion-location: http://' <<<"$headers" && pass "Onion-Location sent" || fail "no Onion-Location header"
    grep -qi '^content-security-policy:' <<<"$headers" && pass "the server's headers pass" || fail "the server's CSP did not pass"
    if grep -qiE '^(server|date):' <<<"$headers"; then fail "nginx sends Server or Date: $headers"; else pass "no Server or Date header"; fi
    got=$(head -c 3000000 /dev/zero | curl -sk -o /dev/null -w '%{http_code}' -H 'content-type: application/json' --data-binary @- "$proxy/api/v1/institutions/$inst/reports")
    [ "$got" = 413 ] && pass "a 3 MB JSON body is cut at nginx (413)" || fail "a 3 MB JSON body got $got, expected 413"
    upload=$(curl -sk -H 'content-type: application/json' -d "{\"version\":1,\"sealed_size\":$size}" "$proxy/api/v1/institutions/$inst/uploads" | jq -r .upload)
    got=$(curl -sk -o /dev/null -w '%{http_code}' -X PUT --data-binary "@$work/big.age" "$proxy/api/v1/institutions/$inst/uploads/$upload?offset=0")
    [ "$got" = 200 ] && pass "a 3 MB upload streams through nginx" || fail "an upload through nginx got $got"
    if [ -n "$(find "$work/nginx" -name '*.log')" ] || [ -s "$work/nginx/err" ]; then
      fail "nginx wrote a log: $(cat "$work/nginx/err")"
    else
      pass "nginx wrote no log"
    fi
    kill -TERM "$(cat "$nginx_pid_file")"
    rm -f "$nginx_pid_file"
  else
    fail "nginx did not start: $(cat "$work/nginx/err")"
  fi
fi

# ---------------------------------------------------------------------------------------
step "the server's shutdown, memory and system calls"
if [ -n "$server_pid" ]; then
  kill -TERM "$server_pid"
  if wait "$strace_pid"; then pass "SIGTERM: the server shut down cleanly"; else fail "the server did not exit cleanly on SIGTERM: $(tail -5 "$work/server.err")"; fi
  strace_pid=""
  server_pid=""
  if grep -E 'mprotect\(.*PROT_EXEC|mmap\(.*PROT_WRITE\|PROT_EXEC|mmap\(.*PROT_READ\|PROT_WRITE\|PROT_EXEC' "$work/trace" | grep -q .; then
    fail "the server asked for writable+executable memory: $(grep -E 'PROT_EXEC' "$work/trace" | grep -E 'mprotect|PROT_WRITE' | head -3)"
  else
    pass "no writable+executable memory (MemoryDenyWriteExecute=yes holds)"
  fi
  allow=$(sed -n 's/^SystemCallFilter=\([^~].*\)/\1/p' "$unit")
  deny=$(sed -n 's/^SystemCallFilter=~\(.*\)/\1/p' "$unit")
  for group in $allow; do expand_filter "$group"; done | sort -u >"$work/allowed"
  for group in $deny; do expand_filter "$group"; done | sort -u >"$work/denied"
  awk '{ s = $2; if (s ~ /^[a-z_0-9]+\(/) { sub(/\(.*/, "", s); print s } else if (s == "<...") print $3 }' "$work/trace" |
    sort -u >"$work/used"
  outside=$(comm -23 "$work/used" "$work/allowed" | tr '\n' ' ')
  denied=$(comm -12 "$work/used" "$work/denied" | tr '\n' ' ')
  if [ ! -s "$work/allowed" ] || [ "$(wc -l <"$work/used")" -lt 20 ]; then
    fail "cannot compare system calls (filter or trace empty)"
  elif [ -n "$outside$denied" ]; then
    fail "the server uses system calls the unit forbids: ${outside}${denied}"
  else
    pass "all $(wc -l <"$work/used") system calls the server made are allowed by the unit's filter"
  fi
fi

# ---------------------------------------------------------------------------------------
step "the example configuration (deploy/peluit.toml) loads"
if [ -n "$binary" ] && [ -f "$work/demo/demo.json" ]; then
  key=$(jq -r .manifest_key "$work/demo/demo.json")
  sed "s#REPLACE_WITH_THE_MANIFEST_KEY_FROM_THE_DESK#$key#" deploy/peluit.toml >"$work/peluit.toml"
  if out=$("$binary" token list --config "$work/peluit.toml" --institution itjen-contoh --data-dir "$work/example-store" 2>&1); then
    pass "peluit-server reads deploy/peluit.toml"
  else
    fail "deploy/peluit.toml does not load: $out"
  fi
  if "$binary" token list --config deploy/peluit.toml --institution itjen-contoh --data-dir "$work/example-store" >/dev/null 2>&1; then
    fail "deploy/peluit.toml loads with its placeholder key"
  fi
fi

# ---------------------------------------------------------------------------------------
step "tor: tor --verify-config -f deploy/tor/torrc"
mkdir -m 0700 "$work/tor"
sed -e "s#^DataDirectory .*#DataDirectory $work/tor/data#" \
  -e "s#^HiddenServiceDir .*#HiddenServiceDir $work/tor/data/peluit/#" deploy/tor/torrc >"$work/tor/torrc"
if out=$(tor --verify-config -f "$work/tor/torrc" 2>&1); then
  pass "tor accepts the configuration"
else
  fail "tor --verify-config: $(grep -E '\[(warn|err)\]' <<<"$out" | head -5)"
fi
for rule in 'HiddenServiceVersion 3' 'HiddenServicePoWDefensesEnabled 1' 'HiddenServicePort 80 127.0.0.1:8080' 'SocksPort 0'; do
  if grep -qx "$rule" deploy/tor/torrc; then pass "torrc: $rule"; else fail "torrc lacks: $rule"; fi
done

# ---------------------------------------------------------------------------------------
step "Containerfile: lint (no container engine runs here, see deploy/container.md)"
cf=deploy/Containerfile
channel=$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)
if grep -q "^FROM docker.io/library/rust:$channel-" "$cf"; then pass "builds with the pinned toolchain $channel"; else fail "$cf does not build with rust $channel (rust-toolchain.toml)"; fi
while read -r -a words; do
  for source in "${words[@]:1:${#words[@]}-2}"; do
    [ -e "$source" ] && pass "COPY source $source exists" || fail "COPY source $source is not in the repository"
  done
done < <(grep -E '^COPY ' "$cf" | grep -v -- '--from=')
grep -q -- '-p peluit-server --bin peluit-server' "$cf" && [ -f crates/peluit-server/src/bin/peluit-server/main.rs ] &&
  pass "builds the peluit-server binary" || fail "$cf does not build the peluit-server binary"
copied=$(sed -n 's#^COPY --from=build /src/\(target/release/peluit-server\) \(.*\)$#\1 \2#p' "$cf")
[ "${copied%% *}" = target/release/peluit-server ] && [ "${copied#* }" = /usr/local/bin/peluit-server ] &&
  grep -q '^ENTRYPOINT \["/usr/local/bin/peluit-server"\]' "$cf" &&
  pass "copies target/release/peluit-server to the ENTRYPOINT path" ||
  fail "$cf: the copied binary, its path and the ENTRYPOINT disagree"
if [ -n "$binary" ] && "$binary" serve --help >/dev/null 2>&1 && grep -q '^CMD \["serve", "--config", "/etc/peluit/peluit.toml"\]' "$cf"; then
  pass "CMD runs \`serve --config\`, which the binary accepts"
else
  fail "$cf: CMD is not a \`serve --config\` the binary accepts"
fi
grep -q '^VOLUME \["/var/lib/peluit"\]' "$cf" && grep -q 'PELUIT_DATA_DIR=/var/lib/peluit/store' "$cf" &&
  pass "the store lives on the volume" || fail "$cf: PELUIT_DATA_DIR is not on the VOLUME"
if command -v podman >/dev/null 2>&1 || { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }; then
  echo "note: a container engine is available; build with the commands in deploy/container.md"
else
  echo "note: no container engine runs here; the image was not built (deploy/container.md)"
fi

step "backup and restore scripts (behaviour: tests/tests/backup_restore.rs)"
for s in deploy/backup.sh deploy/restore.sh deploy/check.sh; do
  if bash -n "$s" && [ -x "$s" ]; then pass "$s parses and is executable"; else fail "$s has a syntax error or is not executable"; fi
done

echo
if [ ${#failures[@]} -gt 0 ]; then
  printf 'deploy/check.sh: %d check(s) failed:\n' "${#failures[@]}" >&2
  printf '  - %s\n' "${failures[@]}" >&2
  exit 1
fi
echo "deploy/check.sh: all deploy checks passed"
