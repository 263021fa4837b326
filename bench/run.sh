#!/usr/bin/env bash
# dot-proxy benchmark: this proxy side by side with dnsdist, Knot Resolver (kresd), unbound (as a
# forwarder) and stubby, all forwarding over DNS-over-TLS to the same unbound upstream on loopback,
# driven by dnsperf. Writes a Markdown report to bench/results/ and prints it.
#
#   bash bench/run.sh                 # everything (installs Debian packages when missing)
#   BENCH_SECONDS=5 BENCH_REPEATS=1 BENCH_PROXIES="dot-proxy kresd" bash bench/run.sh
#
# Two families of proxies, each peer configured as its own documentation recommends for the job:
#   engine (every cache off): dot-proxy and dot-proxy-guarded with dotproxy.cache.enabled=false,
#     dnsdist with maxInFlight=100 (pipelined DoT) and no packet cache, kresd with
#     policy.FLAGS('NO_CACHE'), unbound with cache-max-ttl: 0, stubby (no cache);
#   as deployed (every cache on, "-cached"): dot-proxy with its default cache, dnsdist with a
#     1,000,000-entry packet cache, kresd's 100 MB cache (with kres-cache-gc), unbound's caches.
# Scenarios, each repeated BENCH_REPEATS times (the report gives medians):
# Each proxy first gets an unrecorded warm-up (twice BENCH_WARMUP seconds, default 10: JIT, TLS),
# with unique names (a warm cache would not help the cache-miss cells). All proxies then stay up
# and the cells are interleaved (each scenario runs on every proxy in turn, the order rotating per
# repeat), each after one unrecorded second of the same load that re-opens idle upstream connections.
# One more pass of every cell (repeat 0) is run first and not recorded: see the main loop.
#   (engine:)
#   miss-udp / miss-tcp  maximum throughput, every name new to the run (cache misses), UDP / TCP
#   rate-udp             fixed 2,000 q/s, unique A names plus large TXT answers: latency percentiles
#   (as deployed:)
#   hot-udp              maximum throughput over 1,000 names asked again and again (cache hits)
#   zipf-udp             maximum throughput, names drawn Zipf (s = 1) from 100,000 new to the run:
#                        about 85% repeats, the mix a cache sees in production
#   rate-zipf            fixed 2,000 q/s of such a Zipf mix: latency percentiles with the caches on,
#                        misses and hits together, as a client of a deployed proxy sees them
#   ceiling              dnsperf -m dot straight at the upstream: what any proxy could reach at most
#   footprint            after the cells above, each "-cached" proxy again, fresh and alone: filled
#                        with the same 100,000 names (two paced passes), then RSS sampled each second
#                        under a steady 20,000 q/s of hits on them; the upstream's count shows every
#                        name was held. dot-proxy runs as an operator would to hold them: a larger
#                        dotproxy.cache.max-size and heap (BENCH_FOOTPRINT_CACHE, BENCH_FOOTPRINT_JAVA_OPTS)
# BENCH_SCENARIOS picks cells, e.g. BENCH_SCENARIOS=footprint runs that cell alone (no ceiling).
# On two or more cores the load generator and the upstream share CPU 0 and the proxies share CPU 1
# (only the one under load is busy).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
seconds=${BENCH_SECONDS:-8}
repeats=${BENCH_REPEATS:-3}
warmup=${BENCH_WARMUP:-10}
# dot-proxy-guarded is dot-proxy with a per-client rate limit no client reaches: what the guard
# costs per answer, in the same run.
# dot-proxy-2lanes is dot-proxy with dotproxy.event-loops=2 on its one CPU: what lanes cost per answer
# (more throughput from lanes needs more CPUs than this rig gives a proxy).
proxies=${BENCH_PROXIES:-"dot-proxy dot-proxy-guarded dot-proxy-2lanes dnsdist kresd unbound stubby dot-proxy-cached dnsdist-cached kresd-cached unbound-cached"}
scenarios=${BENCH_SCENARIOS:-"miss-udp miss-tcp rate-udp hot-udp zipf-udp rate-zipf footprint"}
main_scenarios=$(for s in $scenarios; do [ "$s" = footprint ] || echo "$s"; done | xargs)
# The footprint cell: how many names, how long the measured load, and dot-proxy as sized for them.
footprint_names=${BENCH_FOOTPRINT_NAMES:-100000}
footprint_seconds=${BENCH_FOOTPRINT_SECONDS:-20}
footprint_cache=${BENCH_FOOTPRINT_CACHE:-32m}
footprint_java_opts=${BENCH_FOOTPRINT_JAVA_OPTS:-"-Xmx64m"}
work=$(mktemp -d /tmp/dot-proxy-bench.XXXXXX)
raw=$work/raw
mkdir -p "$raw" "$here/results"
declare -A port=([dot-proxy]=5301 [dnsdist]=5302 [kresd]=5303 [unbound]=5304 [stubby]=5305 [dot-proxy-guarded]=5306 [dot-proxy-2lanes]=5311
                 [dot-proxy-cached]=5307 [dnsdist-cached]=5308 [kresd-cached]=5309 [unbound-cached]=5310)
family() { case $1 in *-cached) echo deployed ;; *) echo engine ;; esac; }
pids=()

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
alive() { # pid: running (a zombie that no one reaped yet has exited)
  [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

stop() { # pid...: stops the processes and waits until they are gone. They were started in a
  # subshell ($(start ...)), so they are not this shell's children and `wait` cannot wait for them;
  # a dot-proxy drains for 5 s after SIGTERM, still answering on its port, and a proxy started
  # again on that port would otherwise share it with the draining one (SO_REUSEPORT).
  local p
  kill "$@" 2>/dev/null || true
  for p in "$@"; do
    for _ in $(seq 1 300); do alive "$p" || break; sleep 0.1; done
    ! alive "$p" || kill -9 "$p" 2>/dev/null || true # still there after 30 s
  done
}

cleanup() { stop "${pids[@]}"; wait 2>/dev/null || true; }
trap cleanup EXIT

# --- what the benchmark needs -------------------------------------------------------------------
need=()
for cmd in dnsperf:dnsperf unbound:unbound stubby:stubby dnsdist:dnsdist kresd:knot-resolver \
           kdig:knot-dnsutils openssl:openssl gcc:gcc python3:python3 taskset:util-linux; do
  command -v "${cmd%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${cmd%%:*}" ] || need+=("${cmd#*:}")
done
if ((${#need[@]})); then
  log "installing ${need[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Package scripts may start the peers as system services; they would compete for the CPUs.
for service in unbound stubby dnsdist kresd@1; do
  systemctl stop "$service" >/dev/null 2>&1 || true
done

if [ "$(nproc)" -ge 2 ]; then
  load_cpu=(taskset -c 0); proxy_cpu=(taskset -c 1); pinning="load generator and upstream on CPU 0, proxies on CPU 1"
else
  load_cpu=(); proxy_cpu=(); pinning="none (one CPU)"
fi

# --- the proxy under test -----------------------------------------------------------------------
jar=$root/target/quarkus-app/quarkus-run.jar
# The JVM flags of the container image (Dockerfile.jvm), unless BENCH_JAVA_OPTS says otherwise.
java_opts=${BENCH_JAVA_OPTS:-$(sed -n 's/^ENV JAVA_OPTS="\(.*\)"$/\1/p' "$root/Dockerfile.jvm")}
# And its malloc settings (the ENV MALLOC_* lines), unless BENCH_MALLOC_ENV says otherwise.
if [ -n "${BENCH_MALLOC_ENV+set}" ]; then
  read -ra malloc_env <<< "$BENCH_MALLOC_ENV"
else
  mapfile -t malloc_env < <(sed -n 's/^ENV \(MALLOC_[A-Z_]*=[0-9]\+\)$/\1/p' "$root/Dockerfile.jvm")
  [ "${#malloc_env[@]}" -eq "$(grep -c '^ENV MALLOC_' "$root/Dockerfile.jvm")" ] ||
    { echo "bench: an ENV MALLOC_ line of Dockerfile.jvm is not of the form ENV MALLOC_NAME=number" >&2; exit 1; }
fi
if [ ! -f "$jar" ] || [ -n "${BENCH_BUILD:-}" ]; then
  log "building dot-proxy"
  (cd "$root" && ./mvnw -q -B package -DskipTests)
fi

# --- test CA, upstream certificate, zone, query files --------------------------------------------
log "work folder $work"
gcc -shared -fPIC -O2 -o "$work/nodelay.so" "$here/nodelay.c" -ldl
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/ca.key" \
  -out "$work/ca.pem" -days 30 -subj "/CN=dot-proxy bench CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/up.key" \
  -out "$work/up.csr" -subj "/CN=bench.test" 2>/dev/null
printf 'subjectAltName=DNS:bench.test,IP:127.0.0.1\n' > "$work/ext.cnf"
openssl x509 -req -in "$work/up.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
  -out "$work/up.pem" -days 30 -extfile "$work/ext.cnf" 2>/dev/null
python3 "$here/gen.py" zone "$work"
# As the image does at build time: a class-data sharing archive for this machine's JVM.
log "writing dot-proxy's class-data sharing archive (src/main/docker/cds-train.sh)"
# shellcheck disable=SC2086
bash "$root/src/main/docker/cds-train.sh" "$jar" "$work/app-cds.jsa" $java_opts
echo 0 > "$work/seed"
fresh() { # mode count -> a query file of names never asked before in this run
  # Called as $(fresh ...), so in a subshell: the seed lives in a file, not in a variable.
  local seed=$(( $(cat "$work/seed") + 1 ))
  echo "$seed" > "$work/seed"
  rm -f "$work/query-$(( seed - 2 )).txt" # the last two stay: a cell's settling and recorded runs
  python3 "$here/gen.py" "$1" "$work/query-$seed.txt" "$2" "$seed"
  echo "$work/query-$seed.txt"
}
miss_count=$(( seconds * 100000 ))

common_unbound="  do-daemonize: no
  username: \"\"
  chroot: \"\"
  directory: \"$work\"
  pidfile: \"\"
  use-syslog: no
  logfile: \"\"
  verbosity: 0
  access-control: 127.0.0.0/8 allow"

cat > "$work/upstream.conf" <<CONF
server:
  interface: 127.0.0.1@8853
  tls-port: 8853
  tls-service-key: "$work/up.key"
  tls-service-pem: "$work/up.pem"
  num-threads: 1
  incoming-num-tcp: 256
  tcp-idle-timeout: 120000
$common_unbound
$(cat "$work/zone.conf")
remote-control:
  control-enable: yes
  control-interface: "$work/upstream.ctl"
  control-use-cert: no
CONF

start() { # name, command...: starts in the background, remembers the pid
  local name=$1; shift
  "$@" > "$work/$name${log_suffix:-}.log" 2>&1 &
  pids+=($!)
  echo $!
}

wait_for_dns() { # port: polls every 20 ms, so start-up times are measured to within that
  for _ in $(seq 1 500); do
    dig @127.0.0.1 -p "$1" +time=1 +tries=1 +short a.miss.bench >/dev/null 2>&1 && return 0
    sleep 0.02
  done
  return 1
}

log "starting the upstream: unbound over TLS on 127.0.0.1:8853 (TCP_NODELAY shim)"
LD_PRELOAD=$work/nodelay.so start upstream "${load_cpu[@]}" unbound -d -c "$work/upstream.conf" >/dev/null
sleep 1
kdig @127.0.0.1 -p 8853 +tls +short a.miss.bench >/dev/null

write_configs() {
  local cached
  for cached in "" "-cached"; do
    # dnsdist: maxInFlight lets it pipeline queries out of order over each DoT connection, as its
    # documentation recommends for DoT and TCP backends (without it: one query at a time).
    # Its packet cache does not evict to make room: once full, it keeps nothing new until its
    # cleaner drops expired entries. Sized, as its documentation asks, for what a run asks within a
    # TTL (the warm-up's and the cells' new names, some 600,000 in 300 s): with 100,000 the warm-up
    # filled it and it cached nothing after.
    cat > "$work/dnsdist$cached.conf" <<CONF
setLocal("127.0.0.1:${port[dnsdist$cached]}")
setSecurityPollSuffix("")
-- The default health check asks a.root-servers.net, which the bench upstream does not serve.
newServer({address="127.0.0.1:8853", tls="openssl", subjectName="bench.test", caStore="$work/ca.pem", validateCertificates=true, checkName="health.miss.bench.", maxInFlight=100})
$([ -n "$cached" ] && echo 'getPool(""):setCache(newPacketCache(1000000))')
CONF
    mkdir -p "$work/kresd$cached"
    cat > "$work/kresd$cached.conf" <<CONF
net.listen('127.0.0.1', ${port[kresd$cached]}, { kind = 'dns' })
trust_anchors.remove('.') -- the bench zone is unsigned; validation is not what is measured
cache.size = 100 * MB
$([ -z "$cached" ] && echo "policy.add(policy.all(policy.FLAGS({'NO_CACHE'}))) -- engine: every query forwarded")
policy.add(policy.all(policy.TLS_FORWARD({{'127.0.0.1@8853', hostname='bench.test', ca_file='$work/ca.pem'}})))
CONF
    cat > "$work/forwarder$cached.conf" <<CONF
server:
  interface: 127.0.0.1@${port[unbound$cached]}
  num-threads: 1
  tls-cert-bundle: "$work/ca.pem"
  module-config: "iterator"
  do-not-query-localhost: no
  msg-cache-size: 64m
  rrset-cache-size: 128m
$([ -z "$cached" ] && printf '  cache-max-ttl: 0\n  cache-max-negative-ttl: 0')
$common_unbound
forward-zone:
  name: "."
  forward-addr: 127.0.0.1@8853#bench.test
  forward-tls-upstream: yes
remote-control:
  control-enable: no
CONF
  done
  cat > "$work/stubby.yml" <<CONF
resolution_type: GETDNS_RESOLUTION_STUB
dns_transport_list:
  - GETDNS_TRANSPORT_TLS
tls_authentication: GETDNS_AUTHENTICATION_REQUIRED
tls_query_padding_blocksize: 128
round_robin_upstreams: 0
idle_timeout: 60000
tls_ca_file: "$work/ca.pem"
listen_addresses:
  - 127.0.0.1@${port[stubby]}
upstream_recursive_servers:
  - address_data: 127.0.0.1
    tls_port: 8853
    tls_auth_name: "bench.test"
CONF
}
write_configs

start_dot_proxy() { # name http-port extra-properties... -> pid
  local name=$1 http=$2; shift 2
  # shellcheck disable=SC2086
  start "$name" "${proxy_cpu[@]}" env "${malloc_env[@]}" java -XX:SharedArchiveFile="$work/app-cds.jsa" $java_opts \
    -Ddotproxy.listen.host=127.0.0.1 -Ddotproxy.listen.port="${port[$name]}" \
    -Ddotproxy.upstreams=127.0.0.1:8853#bench.test -Ddotproxy.tls.ca-file="$work/ca.pem" \
    -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$http" "$@" -jar "$jar"
}

start_proxy() { # name -> pid
  case $1 in
    dot-proxy) start_dot_proxy dot-proxy 9080 -Ddotproxy.cache.enabled=false ;;
    dot-proxy-guarded) start_dot_proxy dot-proxy-guarded 9081 -Ddotproxy.cache.enabled=false \
                 -Ddotproxy.rate-limit.qps=1000000 -Ddotproxy.rate-limit.burst=1000000 ;;
    dot-proxy-cached) start_dot_proxy dot-proxy-cached 9082 ;;
    dot-proxy-2lanes) start_dot_proxy dot-proxy-2lanes 9083 -Ddotproxy.cache.enabled=false -Ddotproxy.event-loops=2 ;;
    dnsdist|dnsdist-cached) start "$1" "${proxy_cpu[@]}" dnsdist --supervised --disable-syslog -C "$work/$1.conf" ;;
    kresd|kresd-cached) start "$1" "${proxy_cpu[@]}" kresd -n -c "$work/$1.conf" "$work/$1" ;;
    unbound) start forwarder "${proxy_cpu[@]}" unbound -d -c "$work/forwarder.conf" ;;
    unbound-cached) start forwarder-cached "${proxy_cpu[@]}" unbound -d -c "$work/forwarder-cached.conf" ;;
    stubby)    start stubby "${proxy_cpu[@]}" stubby -C "$work/stubby.yml" ;;
  esac
}

cpu_ticks() { # pid -> its CPU ticks, and those of the helper it runs with (kresd's cache
  # collector), so that a proxy's CPU per answer includes what its deployment runs beside it
  local sum=0 p
  for p in "$1" ${helper_of[$1]:-}; do
    sum=$(( sum + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0) )) # 0 once the process is gone
  done
  echo "$sum"
}
declare -A helper_of=() # proxy pid -> the pid of a process its deployment runs beside it

# Queries the upstream has answered so far: a cache miss shows up here, a cache hit does not.
upstream_queries() { # prints NA when the count cannot be had (the report then shows a dash)
  unbound-control -c "$work/upstream.conf" stats_noreset 2>/dev/null | sed -n 's/^total.num.queries=//p' | grep . || echo NA
}

dotproxy_counters() { # "name count" lines, sorted: dot-proxy's TLS handshakes, connection errors by
  # kind, timed-out upstream queries so far and its open upstream connections now, from its
  # Prometheus endpoint; nothing when it fails
  { curl -sf --max-time 5 127.0.0.1:9080/q/metrics || true; } | awk '
    /^dotproxy_upstream_handshakes_total/ { c["handshakes"] += $2 }
    /^dotproxy_upstream_errors_total/ && match($0, /result="[a-z]+"/) { c["upstream_errors_" substr($0, RSTART + 8, RLENGTH - 9)] += $2 }
    /^dotproxy_upstream_requests_total/ && /result="timeout"/ { c["upstream_timeouts"] += $2 }
    /^dotproxy_upstream_connections[{ ]/ { c["connections"] += $2 }
    END { if (NR) { c["handshakes"] += 0; c["connections"] += 0; for (k in c) printf "%s %d\n", k, c[k] } }' | LC_ALL=C sort
}

perf() { # label port pid dnsperf-args...: one recorded run, with the proxy's CPU time around it
  # and its resident memory halfway through (under the run's load)
  local label=$1 target=$2 pid=${3:-}; shift 3
  local before=0 upstream_before counted=false counters_before="" sampler=""
  # The scrape comes before the CPU reading: serving it is not part of the run.
  if [ "${label%%.*}" = dot-proxy ]; then counted=true; counters_before=$(dotproxy_counters); fi
  upstream_before=$(upstream_queries)
  if [ -n "$pid" ]; then
    before=$(cpu_ticks "$pid")
    # dnsperf waits for late answers after its last query, so the run's end is not under load.
    { sleep "$(( seconds / 2 ))"; awk '/VmRSS/ {print "rss_kib", $2}' "/proc/$pid/status" 2>/dev/null; } > "$raw/$label.rss" &
    sampler=$!
  fi
  "${load_cpu[@]}" dnsperf -s 127.0.0.1 -p "$target" -l "$seconds" "$@" > "$raw/$label.txt" 2>&1 || true
  if [ -n "$pid" ]; then
    echo "proxy_cpu_seconds $(( $(cpu_ticks "$pid") - before )) $(getconf CLK_TCK)" >> "$raw/$label.txt"
    wait "$sampler" || true
    cat "$raw/$label.rss" >> "$raw/$label.txt"
    rm -f "$raw/$label.rss"
  fi
  if $counted; then
    local counters_after
    counters_after=$(dotproxy_counters)
    if [ -n "$counters_before" ] && [ -n "$counters_after" ]; then
      # What changed over the run: the handshakes always, connection errors and timeouts when any;
      # the open connections before and after.
      { LC_ALL=C join <(echo "$counters_before") <(echo "$counters_after") || true; } \
        | awk '$1 == "connections" { print $1, $2, $3; next }
               { d = $3 - $2; if ($1 == "handshakes" || d != 0) print $1, d }' >> "$raw/$label.txt"
    else
      echo "handshakes NA" >> "$raw/$label.txt" # a scrape failed: no count rather than a wrong one
    fi
  fi
  local upstream_after
  upstream_after=$(upstream_queries)
  if [ "$upstream_before" != NA ] && [ "$upstream_after" != NA ]; then
    echo "upstream_queries $(( upstream_after - upstream_before ))" >> "$raw/$label.txt"
  fi
}

cell() { # scenario name repeat: settles the proxy, then records one run of the scenario
  # Repeat 0 is the unrecorded warm-up pass: its output goes to raw/warmup/, which the report skips.
  local scenario=$1 i=$3 target=${port[$2]} pid=${pid_of[$2]} name=$2 kind count args settle_count
  [ "$i" -eq 0 ] && name=warmup/$2
  case $scenario in
    miss-udp) kind=miss;  count=$miss_count; settle_count=150000; args=(-m udp -c 8 -q 500) ;;
    miss-tcp) kind=miss;  count=$miss_count; settle_count=150000; args=(-m tcp -c 8 -q 500) ;;
    rate-udp) kind=mixed; count=$(( seconds * 2000 + 1000 )); settle_count=3000; args=(-m udp -Q 2000 -c 4 -q 200 -e -v) ;;
    hot-udp)  kind=hot;   count=0; settle_count=0; args=(-m udp -c 8 -q 500) ;;
    # Long enough not to loop at 150,000 q/s; the settling second draws names of its own.
    zipf-udp) kind=zipf;  count=$(( seconds * 150000 )); settle_count=150000; args=(-m udp -c 8 -q 500) ;;
    rate-zipf) kind=zipf; count=$(( seconds * 2000 + 1000 )); settle_count=3000; args=(-m udp -Q 2000 -c 4 -q 200 -e -v) ;;
  esac
  # Between two of its own cells a proxy idles while the others run, longer than some idle
  # timeouts: one unrecorded second of the same load first brings back the upstream connections
  # that this load keeps open, for every proxy alike.
  # Both query files are written first, so that the recorded run follows the settling one at once.
  local settle_file run_file
  settle_file=$(queries "$kind" "$settle_count")
  run_file=$(queries "$kind" "$count")
  "${load_cpu[@]}" dnsperf -s 127.0.0.1 -p "$target" -l 1 -d "$settle_file" "${args[@]}" >/dev/null 2>&1 || true
  perf "$name.$scenario.$i" "$target" "$pid" -d "$run_file" "${args[@]}"
}

queries() { # kind count -> a query file: the hot set, or names never asked before
  if [ "$1" = hot ]; then echo "$work/hot.txt"; else fresh "$1" "$2"; fi
}

{
  echo "date $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "machine $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "pinning $pinning"
  echo "seconds $seconds"
  echo "repeats $repeats"
  echo "version dot-proxy $(cd "$root" && git describe --always --dirty 2>/dev/null || echo unknown), $(java -version 2>&1 | head -1) with ${malloc_env[*]} $java_opts and a class-data sharing archive"
  echo "version $(dnsdist --version 2>/dev/null | head -1)"
  echo "version $(kresd --version 2>/dev/null | head -1)"
  echo "version unbound $(unbound -V 2>/dev/null | sed -n 's/^Version //p')"
  echo "version stubby $(dpkg-query -W -f='${Version}' stubby 2>/dev/null)"
  echo "version dnsperf $(dpkg-query -W -f='${Version}' dnsperf 2>/dev/null)"
} > "$raw/meta.txt"

[ -n "$main_scenarios" ] && log "ceiling: dnsperf -m dot straight at the upstream"
for i in $( [ -n "$main_scenarios" ] && seq 1 "$repeats"); do
  perf "ceiling.miss-dot.$i" 8853 "" -m dot -d "$(fresh miss "$miss_count")" -c 8 -q 500
done

# Every proxy is started (one at a time, so each start-up is timed alone) and warmed up, and all
# stay running: the cells are then interleaved, so a noisy minute on this shared machine falls on
# every proxy alike rather than on whichever ran in it.
declare -A pid_of=()
running=()
for name in $( [ -n "$main_scenarios" ] && echo "$proxies"); do
  started=$(date +%s%N)
  pid=$(start_proxy "$name")
  pids+=("$pid")
  if ! wait_for_dns "${port[$name]}"; then
    log "$name did not answer; see $work/$name.log"
    kill "$pid" 2>/dev/null || true # not left running on the proxies' CPU
    continue
  fi
  echo "ready $name $(( ($(date +%s%N) - started) / 1000000 ))" >> "$raw/meta.txt"
  pid_of[$name]=$pid
  if [ "$name" = kresd-cached ]; then
    # kresd's cache is an LMDB file that kresd never prunes itself: its packages run kres-cache-gc
    # beside it (a service of its own, every second), which frees space as the file fills. Without
    # it the 100 MB filled within a run and kresd cached nothing more (1.00 upstream queries per
    # answer in rate-zipf, -0722).
    helper_of[$pid]=$(start kres-cache-gc "${proxy_cpu[@]}" kres-cache-gc -c "$work/kresd-cached" -d 1000)
    pids+=("${helper_of[$pid]}")
  fi
  running+=("$name")
  log "$name: warm-up (${warmup}s and ${warmup}s with large answers, not recorded)"
  "${load_cpu[@]}" dnsperf -s 127.0.0.1 -p "${port[$name]}" -l "$warmup" -d "$(fresh miss $(( warmup * 100000 )))" \
    -c 8 -q 500 >/dev/null 2>&1 || true
  # The paths the latency cell takes too (large answers, truncation), with names never asked again.
  "${load_cpu[@]}" dnsperf -s 127.0.0.1 -p "${port[$name]}" -l "$warmup" -d "$(fresh mixed $(( warmup * 100000 )))" \
    -c 8 -q 500 -e >/dev/null 2>&1 || true
done

((${#running[@]})) || [ -z "$main_scenarios" ] || { log "no proxy answered"; exit 1; }
# Repeat 0 runs every cell once unrecorded: a JIT compiles for the traffic it has seen, and the
# switch from full load to the paced latency cell (or to TCP clients) recompiles hot paths for a
# few seconds; the recorded repeats measure the steady state a long-running proxy is in.
mkdir -p "$raw/warmup"
for i in $( ((${#running[@]})) && seq 0 "$repeats"); do
  # The order rotates with each repeat, so no proxy always runs first or last.
  order=("${running[@]:$(( i % ${#running[@]} ))}" "${running[@]:0:$(( i % ${#running[@]} ))}")
  for scenario in $main_scenarios; do
    case $scenario in hot-udp|zipf-udp|rate-zipf) wanted=deployed ;; *) wanted=engine ;; esac
    cells=()
    for name in "${order[@]}"; do [ "$(family "$name")" = "$wanted" ] && cells+=("$name"); done
    ((${#cells[@]})) || continue
    log "$( ((i)) && echo "run $i of $repeats" || echo "warm-up pass (not recorded)"): $scenario (${cells[*]})"
    for name in "${cells[@]}"; do
      cell "$scenario" "$name" "$i"
    done
  done
done

stopping=()
for name in "${running[@]}"; do
  pid=${pid_of[$name]}
  if [ -r "/proc/$pid/status" ]; then # a proxy that died has no memory to report
    echo "rss $name $(awk '/VmRSS/ {print $2}' "/proc/$pid/status") $(awk '/VmHWM/ {print $2}' "/proc/$pid/status")" >> "$raw/meta.txt"
    if [ "$name" = dot-proxy-cached ] || { [ "$name" = dot-proxy ] && [[ " $proxies " != *" dot-proxy-cached "* ]]; }; then
      # what its RSS is made of, with the cache as deployed when it ran
      jcmd=$(dirname "$(readlink -f "$(command -v java)")")/jcmd
      if footprint=$(python3 "$here/footprint.py" "$pid" "$jcmd"); then
        echo "footprint $name $footprint" >> "$raw/meta.txt"
      else
        log "no RSS breakdown for $name (bench/footprint.py failed)"
      fi
    fi
  fi
  stopping+=("$pid" ${helper_of[$pid]:-})
done
stop "${stopping[@]}" # all at once: the dot-proxies drain side by side

# --- the footprint cell --------------------------------------------------------------------------
rss_sample() { # pid -> "sample VmRSS RssAnon RssFile RssShmem Pss" in KiB
  awk '/^(VmRSS|RssAnon|RssFile|RssShmem):/ { v[$1] = $2 }
       END { printf "sample %d %d %d %d", v["VmRSS:"], v["RssAnon:"], v["RssFile:"], v["RssShmem:"] }' "/proc/$1/status"
  awk '/^Pss:/ { printf " %d", $2 }' "/proc/$1/smaps_rollup"
  echo
}

held_entries() { # name pid -> the proxy's own count of cached entries, when it tells
  case $1 in
    dot-proxy-cached) curl -sf --max-time 5 127.0.0.1:9082/q/metrics | awk '/^dotproxy_cache_entries[{ ]/ { print $2 + 0 }' ;;
    # kresd's control socket; cache.count() counts its records and packets, not names.
    kresd-cached) python3 - "$work/kresd-cached/control/$2" <<'PY' || true
import re, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(b"cache.count()\n")
reply = b""
while not re.search(rb"\d+\s*\n", reply):
    reply += s.recv(4096)
print(re.search(rb"(\d+)", reply).group(1).decode())
PY
    ;;
  esac
}

upstream_since() { # count -> queries the upstream answered since it read that count, or NA
  local now
  now=$(upstream_queries)
  if [ "$1" != NA ] && [ "$now" != NA ]; then echo $(( now - $1 )); else echo NA; fi
}

footprint_cell() { # name: a fresh instance, filled with the names, then RSS under hits on them
  local name=$1 pid out=$raw/footprint/$1.txt pass upstream_before sampler
  [ "$name" = kresd-cached ] && rm -f "$work/kresd-cached/"*.mdb # its cache outlives a restart
  if [ "$name" = dot-proxy-cached ]; then
    # shellcheck disable=SC2086
    pid=$(start_dot_proxy dot-proxy-cached 9082 -Ddotproxy.cache.max-size="$footprint_cache" $footprint_java_opts)
    echo "settings dotproxy.cache.max-size=$footprint_cache $footprint_java_opts" > "$out"
  else
    pid=$(start_proxy "$name")
    : > "$out"
  fi
  pids+=("$pid")
  if ! wait_for_dns "${port[$name]}"; then
    log "footprint: $name did not answer; see its log in $work"
    kill "$pid" 2>/dev/null || true
    return
  fi
  sleep 2
  echo "idle $(rss_sample "$pid")" >> "$out" # started, nothing cached yet: the base the names add to
  # Paced (and -q 50): kresd fails the excess at once when hundreds of misses arrive together.
  # The second pass asks again whatever the first one did not get kept.
  for pass in 1 2; do
    upstream_before=$(upstream_queries)
    "${load_cpu[@]}" dnsperf -s 127.0.0.1 -p "${port[$name]}" -n 1 -d "$work/footprint.txt" -m udp -c 4 -q 50 -Q 10000 \
      > "$raw/footprint/$name.fill$pass" 2>&1 || true
    echo "fill$pass upstream $(upstream_since "$upstream_before") codes $(sed -n 's/^ *Response codes: *//p' "$raw/footprint/$name.fill$pass")" >> "$out"
  done
  echo "held_before $(held_entries "$name" "$pid")" >> "$out"
  upstream_before=$(upstream_queries)
  # RSS each second under the load, from its second second on.
  { sleep 1; for _ in $(seq 2 "$footprint_seconds"); do rss_sample "$pid"; sleep 1; done; } >> "$out" 2>/dev/null &
  sampler=$!
  "${load_cpu[@]}" dnsperf -s 127.0.0.1 -p "${port[$name]}" -l "$footprint_seconds" -d "$work/footprint.txt" \
    -m udp -c 4 -q 100 -Q 20000 >> "$out" 2>&1 || true
  wait "$sampler" || true
  echo "upstream_queries $(upstream_since "$upstream_before")" >> "$out"
  echo "held_after $(held_entries "$name" "$pid")" >> "$out"
  if [ "$name" = dot-proxy-cached ]; then
    jcmd=$(dirname "$(readlink -f "$(command -v java)")")/jcmd
    echo "cache_bytes $(curl -sf --max-time 5 127.0.0.1:9082/q/metrics | awk '/^dotproxy_cache_bytes[{ ]/ { print $2 + 0 }')" >> "$out"
    echo "footprint $(python3 "$here/footprint.py" "$pid" "$jcmd")" >> "$out" || true
    # For a closer look, in the raw folder: the heap by class (after a full collection), and
    # native memory by JVM area when BENCH_FOOTPRINT_JAVA_OPTS turns its tracking on.
    { "$jcmd" "$pid" GC.heap_info; "$jcmd" "$pid" GC.class_histogram | head -25; } > "$raw/footprint/$name.jvm" 2>&1 || true
    if [[ " $footprint_java_opts " == *NativeMemoryTracking* ]]; then
      "$jcmd" "$pid" VM.native_memory summary > "$raw/footprint/$name.nmt" 2>&1 || true
    fi
  fi
  stop "$pid"
}

if [[ " $scenarios " == *" footprint "* ]]; then
  mkdir -p "$raw/footprint"
  python3 "$here/gen.py" fill "$work/footprint.txt" "$footprint_names" 1
  echo "footprint_names $footprint_names" >> "$raw/meta.txt"
  log_suffix=-footprint
  for name in $proxies; do
    [ "$(family "$name")" = deployed ] || continue
    log "footprint: $name, filled with $footprint_names names, then ${footprint_seconds}s of hits on them"
    footprint_cell "$name"
  done
fi

report=$here/results/$(date -u +%Y%m%d-%H%M).md
python3 "$here/report.py" "$raw" > "$report"
cat "$report"
log "report written to $report (raw dnsperf output in $raw)"
