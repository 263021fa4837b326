#!/usr/bin/env bash
# Writes a class-data sharing archive (AppCDS) of what dot-proxy loads to start and to answer:
# the JVM then maps those classes at start instead of loading and verifying them (measured here:
# first answer 1.75 s -> 1.43 s on one pinned core). The archive only fits the JVM that wrote it,
# so the image writes it at build time and the benchmark on its own machine.
#
#   cds-train.sh JAR ARCHIVE [JVM options...]      (CDS_TRAIN_PORT: listen port, default 5399)
#
# Loopback only, nothing leaves the machine: the upstream is a closed port on 127.0.0.1 (and the
# variables that could name real servers are unset), so the training start also walks the failure
# path (SERVFAIL) of one UDP query.
set -euo pipefail
jar=$1 archive=$2
shift 2
port=${CDS_TRAIN_PORT:-5399}
log=$(mktemp)
fail() {
  cat "$log" >&2
  echo "cds-train.sh: $1" >&2
  exit 1
}
# timeout: a start or shutdown that hangs must not hang an image build (the JVM still writes the
# archive on the SIGTERM that timeout sends).
env -u DoT_HOST -u DOTPROXY_UPSTREAMS -u DOTPROXY_FALLBACK timeout 120 java "$@" -XX:ArchiveClassesAtExit="$archive" \
  -Ddotproxy.listen.host=127.0.0.1 -Ddotproxy.listen.port="$port" \
  -Ddotproxy.upstreams=127.0.0.1:1 -Ddotproxy.timeout=500ms \
  -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port=0 -jar "$jar" > "$log" 2>&1 &
pid=$!
# A query for "example." A, once the listener is up (bash's /dev/udp: no DNS tool needed).
query='\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x00\x00\x01\x00\x01'
listening=no
for _ in $(seq 1 600); do
  kill -0 "$pid" 2>/dev/null || fail "the proxy exited before it listened"
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    listening=yes
    printf "$query" > "/dev/udp/127.0.0.1/$port"
    sleep 1
    break
  fi
  sleep 0.1
done
[ "$listening" = yes ] || fail "the proxy did not listen on 127.0.0.1:$port within 60 s"
kill -TERM "$pid" 2>/dev/null || true
wait "$pid" || true
[ -s "$archive" ] || fail "no archive written to $archive"
rm -f "$log"
