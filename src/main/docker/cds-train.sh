#!/usr/bin/env bash
# Writes a class-data sharing archive (AppCDS) of what dot-proxy loads to start and to answer:
# the JVM then maps those classes at start instead of loading and verifying them (measured here:
# first answer 1.9 s -> 1.4 s on one pinned core). The archive only fits the JVM that wrote it,
# so the image writes it at build time and the benchmark on its own machine.
#
#   cds-train.sh JAR ARCHIVE [JVM options...]
#
# Loopback only, nothing leaves the machine: the upstream is a closed port on 127.0.0.1, so the
# training start also walks the failure path (SERVFAIL) of one UDP query.
set -euo pipefail
jar=$1 archive=$2
shift 2
port=5399
log=$(mktemp)
java "$@" -XX:ArchiveClassesAtExit="$archive" \
  -Ddotproxy.listen.host=127.0.0.1 -Ddotproxy.listen.port=$port \
  -Ddotproxy.upstreams=127.0.0.1:1 -Ddotproxy.timeout=500ms \
  -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port=0 -jar "$jar" > "$log" 2>&1 &
pid=$!
# A query for "example." A, once the listener is up (bash's /dev/udp: no DNS tool needed).
query='\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x00\x00\x01\x00\x01'
for _ in $(seq 1 100); do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
    printf "$query" > /dev/udp/127.0.0.1/$port
    sleep 1
    break
  fi
  sleep 0.1
done
kill -TERM "$pid"
wait "$pid" || true
if [ ! -s "$archive" ]; then
  cat "$log" >&2
  echo "cds-train.sh: no archive written to $archive" >&2
  exit 1
fi
rm -f "$log"
