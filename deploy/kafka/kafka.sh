#!/usr/bin/env bash
# Local single-node Apache Kafka 4.x broker (KRaft, combined broker+controller)
# for CI and integration tests. Installed from Maven Central with Maven (no
# apache.org downloads, no docker).
#
# Usage: deploy/kafka/kafka.sh <command> [args]
#   install                         fetch broker + tools jars into $KAFKA_HOME/libs (cached)
#   start                           install if needed, format storage once, start, wait until ready
#   stop                            SIGTERM, wait, SIGKILL if needed
#   status                          exit 0 if running, 1 if not
#   env                             print SHOP_TEST_KAFKA_BROKERS=127.0.0.1:<port>
#   perf-produce <topic> <num-records> <record-size> [extra args]
#                                   run Kafka's producer perf test (kafka-producer-perf-test,
#                                   org.apache.kafka.tools.ProducerPerformance); creates topic if missing;
#                                   runs in a server JVM (see SHOP_KAFKA_PERF_JVM_OPTS), unlike the other tools
#   run-class <main-class> [args]   run any Kafka main class with the installed classpath
#   logs [n]                        tail the broker log
#   reset                           delete broker data (topics/offsets); broker must be stopped
#
# Environment:
#   SHOP_KAFKA_VERSION              Kafka version (default: kafka.version in pom.xml)
#   SHOP_KAFKA_HOME                 install/data dir (default ~/.cache/shopstream/kafka-<version>)
#   SHOP_KAFKA_PORT                 PLAINTEXT port (default 9092)
#   SHOP_KAFKA_CONTROLLER_PORT      CONTROLLER port (default 9093)
#   SHOP_KAFKA_SASL_PORT            SASL_SSL port (default 9094): SCRAM-SHA-512 over TLS, with ACLs
#                                   (the certificate is made with keytool; `env` names its PEM)
#   SHOP_KAFKA_HEAP                 broker heap (default 512m)
#   SHOP_KAFKA_START_TIMEOUT        seconds to wait for readiness (default 60)
#   SHOP_KAFKA_MVN_ARGS             extra args for mvn (e.g. "-s ci-settings.xml")
#   SHOP_KAFKA_PERF_JVM_OPTS        JVM options of perf-produce's ProducerPerformance (default
#                                   "-XX:+UseG1GC -Xms1g -Xmx1g": the JVM's server defaults, tiered
#                                   C1+C2, G1, a heap it does not starve in); "tools" runs it in the
#                                   JVM of the other tools (-Xmx256m -XX:+UseSerialGC
#                                   -XX:TieredStopAtLevel=1: starts fast, runs slower)
#   JAVA_HOME / JAVA                java to use (needs 17+)
#
# Usage in CI:  deploy/kafka/kafka.sh start && export $(deploy/kafka/kafka.sh env)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$SCRIPT_DIR/pom.xml"

die() { echo "kafka.sh: error: $*" >&2; exit 1; }
say() { echo "kafka.sh: $*"; }

pom_version() {
  sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM" | head -n1
}

KAFKA_VERSION="${SHOP_KAFKA_VERSION:-$(pom_version)}"
[[ -n "$KAFKA_VERSION" ]] || die "cannot read <kafka.version> from $POM"
KAFKA_HOME="${SHOP_KAFKA_HOME:-$HOME/.cache/shopstream/kafka-$KAFKA_VERSION}"
PORT="${SHOP_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${SHOP_KAFKA_CONTROLLER_PORT:-9093}"
# A second listener, SASL_SSL (SCRAM-SHA-512 over TLS), where ACLs bind:
# the shop's components connect there as their own principals. The
# PLAINTEXT listener's (and the controller's) ANONYMOUS is a super user,
# so tests that do not exercise security are unaffected.
SASL_PORT="${SHOP_KAFKA_SASL_PORT:-9094}"
HOST=127.0.0.1
HEAP="${SHOP_KAFKA_HEAP:-512m}"
START_TIMEOUT="${SHOP_KAFKA_START_TIMEOUT:-60}"

LIBS="$KAFKA_HOME/libs"
CONF_DIR="$KAFKA_HOME/config"
DATA_DIR="$KAFKA_HOME/data"
LOG_DIR="$KAFKA_HOME/logs"
PID_FILE="$KAFKA_HOME/kafka.pid"
LOG_FILE="$LOG_DIR/server.log"
PROPS="$CONF_DIR/server.properties"
TLS_DIR="$KAFKA_HOME/tls"
TLS_PASS=shopstream-test-keystore
MARKER="$LIBS/.shopstream-installed"

if [[ -n "${JAVA:-}" ]]; then :
elif [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then JAVA="$JAVA_HOME/bin/java"
else JAVA=java
fi

JAVA_VERSION=unknown
need_java() {
  command -v "$JAVA" >/dev/null 2>&1 || die "java not found (need JDK/JRE 17+ on PATH or JAVA_HOME)"
  local v props
  props="$("$JAVA" -XshowSettings:properties -version 2>&1)"
  v="$(sed -n 's/^ *java.specification.version = //p' <<<"$props")"
  JAVA_VERSION="$(sed -n 's/^ *java.runtime.version = //p' <<<"$props")"
  JAVA_VERSION="${JAVA_VERSION:-$v}"
  [[ "${v%%.*}" =~ ^[0-9]+$ && "${v%%.*}" -ge 17 ]] || die "Kafka $KAFKA_VERSION needs Java 17+, '$JAVA' is version '${v:-unknown}'"
}

need_mvn() {
  command -v mvn >/dev/null 2>&1 || die "mvn not found (Maven is needed to fetch Kafka from Maven Central)"
}

# Identifies a pom/version combination so that pom edits trigger a reinstall.
install_stamp() {
  echo "$KAFKA_VERSION $(cksum <"$POM" | cut -d' ' -f1)"
}

is_installed() {
  [[ -f "$MARKER" && "$(cat "$MARKER")" == "$(install_stamp)" ]]
}

cmd_install() {
  need_java
  if is_installed; then
    say "kafka $KAFKA_VERSION already installed in $KAFKA_HOME ($(ls "$LIBS"/*.jar | wc -l) jars)"
    return 0
  fi
  need_mvn
  mkdir -p "$KAFKA_HOME"
  local tmp="$KAFKA_HOME/libs.tmp.$$" mlog="$KAFKA_HOME/mvn-install.log"
  rm -rf "$tmp"
  say "installing kafka $KAFKA_VERSION from Maven Central into $KAFKA_HOME"
  say "resolving dependencies with Maven (jars are cached in ~/.m2; full log: $mlog)"
  local start=$SECONDS rc=0
  # Non-quiet batch mode so we can show download progress; only the jar
  # downloads are echoed, everything else goes to the log.
  # shellcheck disable=SC2086
  mvn -B -Dstyle.color=never -f "$POM" ${SHOP_KAFKA_MVN_ARGS:-} \
      -Dkafka.version="$KAFKA_VERSION" \
      dependency:copy-dependencies -DoutputDirectory="$tmp" 2>&1 \
    | tee "$mlog" \
    | awk '
        { sub(/^\[INFO\] /, "") }
        /^Downloaded from [^ ]+ [^ ]+\.jar / {
          f=$4; sub(/.*\//, "", f); s=$0; sub(/.*\(/, "", s); sub(/ at .*/, "", s)
          printf "  downloaded %-55s %s\n", f, s; fflush()
        }
        /^Downloaded from [^ ]+ [^ ]+\.pom / { p++; if (p % 50 == 0) { printf "  ... %d poms resolved\n", p; fflush() } }
        /^\[INFO\] --- / || /^--- / { print "  " $0; fflush() }
      ' || rc=$?
  if [[ $rc -ne 0 ]] || ! grep -q 'BUILD SUCCESS' "$mlog"; then
    rm -rf "$tmp"
    echo "kafka.sh: error: mvn failed; Maven said:" >&2
    grep -E '^\[(ERROR|FATAL)\]' "$mlog" \
      | grep -v -E '^\[ERROR\] *$|full stack trace|-X switch|For more information about|^\[ERROR\] \[Help' >&2 \
      || tail -n 30 "$mlog" >&2
    if grep -q -E 'Could not transfer|transfer failed|Unknown host|Connect to .* failed|timed out' "$mlog"; then
      echo "kafka.sh: Maven could not reach the repository (Maven Central or your mirror); first network errors:" >&2
      grep -E '^\[(WARNING|ERROR)\].*(Could not transfer|transfer failed|Unknown host|Connect to .* failed|timed out)' "$mlog" \
        | grep -v 'during a previous attempt' | head -n 3 >&2 || true
    fi
    echo "kafka.sh: (full Maven output: $mlog)" >&2
    exit 1
  fi
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS"
  install_stamp >"$MARKER"
  say "installed $(ls "$LIBS"/*.jar | wc -l) jars ($(du -sh "$LIBS" | cut -f1)) in $((SECONDS - start))s"
}

pid_alive() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(cat "$PID_FILE" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # guard against pid reuse: must be our broker
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "kafka.Kafka $PROPS" || return 1
  echo "$pid"
}

port_open() {
  (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

# make_tls makes, once, the broker's self-signed certificate for $HOST
# (keytool, from the JDK) and its PEM, which clients trust as their CA.
make_tls() {
  [[ -f "$TLS_DIR/broker.p12" && -f "$TLS_DIR/ca.pem" ]] && return 0
  mkdir -p "$TLS_DIR"
  local keytool=keytool
  [[ "$JAVA" == */* ]] && keytool="$(dirname "$JAVA")/keytool"
  rm -f "$TLS_DIR/broker.p12" "$TLS_DIR/ca.pem"
  "$keytool" -genkeypair -alias kafka -keyalg EC -groupname secp256r1 -dname "CN=$HOST" -ext "SAN=ip:$HOST" \
    -ext "BC:c=ca:true" -validity 3650 -keystore "$TLS_DIR/broker.p12" -storetype PKCS12 \
    -storepass "$TLS_PASS" -keypass "$TLS_PASS" >/dev/null 2>&1 || die "keytool could not make the broker's certificate"
  "$keytool" -exportcert -rfc -alias kafka -keystore "$TLS_DIR/broker.p12" -storetype PKCS12 \
    -storepass "$TLS_PASS" -file "$TLS_DIR/ca.pem" >/dev/null 2>&1 || die "keytool could not export the certificate"
  say "made the SASL_SSL listener's certificate in $TLS_DIR"
}

write_configs() {
  mkdir -p "$CONF_DIR" "$DATA_DIR" "$LOG_DIR"
  make_tls
  cat >"$PROPS" <<EOF
# generated by deploy/kafka/kafka.sh -- overwritten on every start
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CONTROLLER_PORT,SASL_SSL://$HOST:$SASL_PORT
advertised.listeners=PLAINTEXT://$HOST:$PORT,SASL_SSL://$HOST:$SASL_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PKCS12
ssl.keystore.location=$TLS_DIR/broker.p12
ssl.keystore.password=$TLS_PASS
ssl.key.password=$TLS_PASS
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS;User:admin
allow.everyone.if.no.acl.found=false
log.dirs=$DATA_DIR/kraft-combined-logs
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.ms=-1
EOF
  cat >"$CONF_DIR/log4j2.properties" <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
EOF
  cat >"$CONF_DIR/tools-log4j2.properties" <<'EOF'
status = warn
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
EOF
}

# JVM options of the CLI tools: tuned to start fast (C1 only, small serial heap).
TOOL_JVM_OPTS=(-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1)
# JVM options of perf-produce's ProducerPerformance: a measurement, so the
# JVM's server defaults (tiered C1+C2, G1) with a heap it does not starve in.
PERF_JVM_OPTS_DEFAULT="-XX:+UseG1GC -Xms1g -Xmx1g"

# Run a Kafka CLI main class with the installed classpath in a JVM with the
# given options: run_java <jvm options...> -- <main-class> [args].
run_java() {
  local -a opts=()
  while [[ $# -gt 0 && "$1" != "--" ]]; do opts+=("$1"); shift; done
  shift
  local main="$1"; shift
  "$JAVA" "${opts[@]}" -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$CONF_DIR/tools-log4j2.properties" \
    -cp "$LIBS/*" "$main" "$@"
}

# Run a Kafka CLI main class with the installed classpath.
run_tool() {
  run_java "${TOOL_JVM_OPTS[@]}" -- "$@"
}

broker_answers() {
  port_open "$PORT" || return 1
  run_tool org.apache.kafka.tools.BrokerApiVersionsCommand \
    --bootstrap-server "$HOST:$PORT" >/dev/null 2>&1
}

cmd_start() {
  need_java
  local pid
  if pid="$(pid_alive)"; then
    say "kafka already running (pid $pid) at $HOST:$PORT -- nothing to do"
    return 0
  fi
  rm -f "$PID_FILE"
  is_installed || cmd_install
  for p in "$PORT" "$CONTROLLER_PORT" "$SASL_PORT"; do
    port_open "$p" && die "port $HOST:$p is already in use by another process (set SHOP_KAFKA_PORT / SHOP_KAFKA_CONTROLLER_PORT / SHOP_KAFKA_SASL_PORT)"
  done
  write_configs

  if [[ ! -f "$DATA_DIR/kraft-combined-logs/meta.properties" ]]; then
    local cid
    cid="$(run_tool kafka.tools.StorageTool random-uuid)"
    say "formatting storage in $DATA_DIR (cluster id $cid)"
    local out
    out="$(run_tool kafka.tools.StorageTool format -t "$cid" -c "$PROPS" 2>&1)" \
      || { echo "$out" >&2; die "storage format failed (see output above)"; }
    echo "$out" | grep -v '^Bootstrap metadata:' | sed 's/^/  /' || true
  else
    say "reusing existing data in $DATA_DIR"
  fi

  say "starting kafka $KAFKA_VERSION (log: $LOG_FILE)"
  local start=$SECONDS
  {
    echo "===== $(date -u '+%Y-%m-%dT%H:%M:%SZ') kafka.sh start ====="
  } >>"$LOG_FILE"
  nohup "$JAVA" "-Xmx$HEAP" "-Xms$HEAP" -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
    -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$CONF_DIR/log4j2.properties" \
    -Dkafka.logs.dir="$LOG_DIR" \
    -cp "$LIBS/*" kafka.Kafka "$PROPS" >>"$LOG_FILE" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PID_FILE"

  printf 'kafka.sh: waiting for broker (pid %s) on %s:%s ' "$pid" "$HOST" "$PORT"
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo
      rm -f "$PID_FILE"
      echo "kafka.sh: error: broker process exited during startup; last log lines:" >&2
      tail -n 40 "$LOG_FILE" >&2
      exit 1
    fi
    if broker_answers; then
      echo
      say "broker up in $((SECONDS - start))s"
      echo "kafka ready at $HOST:$PORT"
      return 0
    fi
    if (( SECONDS - start >= START_TIMEOUT )); then
      echo
      echo "kafka.sh: error: broker did not answer on $HOST:$PORT within ${START_TIMEOUT}s; last log lines:" >&2
      tail -n 40 "$LOG_FILE" >&2
      kill -TERM "$pid" 2>/dev/null || true
      sleep 5
      kill -KILL "$pid" 2>/dev/null || true
      rm -f "$PID_FILE"
      exit 1
    fi
    printf '.'
    sleep 1
  done
}

cmd_stop() {
  local pid
  if ! pid="$(pid_alive)"; then
    rm -f "$PID_FILE"
    say "kafka not running"
    return 0
  fi
  say "stopping kafka (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for ((i = 0; i < 30; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    printf '.'
    sleep 1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo
    say "still alive after 30s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 1
  elif [[ $i -gt 0 ]]; then
    echo
  fi
  rm -f "$PID_FILE"
  say "kafka stopped"
}

cmd_status() {
  local pid
  if pid="$(pid_alive)"; then
    echo "kafka running (pid $pid) at $HOST:$PORT, home $KAFKA_HOME"
  else
    echo "kafka not running (home $KAFKA_HOME)"
    return 1
  fi
}

cmd_env() {
  echo "SHOP_TEST_KAFKA_BROKERS=$HOST:$PORT"
  echo "SHOP_TEST_KAFKA_SASL_SSL=$HOST:$SASL_PORT"
  echo "SHOP_TEST_KAFKA_CA_FILE=$TLS_DIR/ca.pem"
}

cmd_perf_produce() {
  [[ $# -ge 3 ]] || die "usage: kafka.sh perf-produce <topic> <num-records> <record-size> [extra ProducerPerformance args]"
  local topic="$1" n="$2" size="$3"
  shift 3
  need_java
  is_installed || die "kafka not installed (run: kafka.sh install)"
  pid_alive >/dev/null || die "kafka not running (run: kafka.sh start)"
  [[ -f "$CONF_DIR/tools-log4j2.properties" ]] || write_configs
  # auto.create.topics.enable=false, so make sure the topic exists (num.partitions=3)
  run_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$HOST:$PORT" \
    --create --if-not-exists --topic "$topic" >/dev/null
  # Newer 4.x deprecate --producer-props in favour of --bootstrap-server/--command-property.
  local -a target
  local help
  help="$(run_tool org.apache.kafka.tools.ProducerPerformance --help 2>&1 || true)"
  if [[ "$help" == *--command-property* ]]; then
    target=(--bootstrap-server "$HOST:$PORT")
  else
    target=(--producer-props "bootstrap.servers=$HOST:$PORT")
  fi
  local -a jvm
  case "${SHOP_KAFKA_PERF_JVM_OPTS:-$PERF_JVM_OPTS_DEFAULT}" in
    tools) jvm=("${TOOL_JVM_OPTS[@]}") ;;
    *) read -r -a jvm <<<"${SHOP_KAFKA_PERF_JVM_OPTS:-$PERF_JVM_OPTS_DEFAULT}" ;;
  esac
  say "ProducerPerformance: kafka $KAFKA_VERSION, java $JAVA_VERSION, JVM options: ${jvm[*]}"
  say "ProducerPerformance: topic=$topic records=$n size=${size}B throughput=unlimited, extra args: ${*:-none} (every other producer setting is the Java producer's default)"
  run_java "${jvm[@]}" -- org.apache.kafka.tools.ProducerPerformance --topic "$topic" \
    --num-records "$n" --record-size "$size" --throughput -1 "${target[@]}" "$@"
}

cmd_run_class() {
  [[ $# -ge 1 ]] || die "usage: kafka.sh run-class <main-class> [args...]"
  need_java
  is_installed || die "kafka not installed (run: kafka.sh install)"
  [[ -f "$CONF_DIR/tools-log4j2.properties" ]] || write_configs
  run_tool "$@"
}

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
}

main() {
  local cmd="${1:-}"
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) cmd_env ;;
    perf-produce) cmd_perf_produce "$@" ;;
    run-class) cmd_run_class "$@" ;;
    logs) tail -n "${1:-100}" "$LOG_FILE" ;;
    reset)
      pid_alive >/dev/null && die "kafka is running; stop it first"
      rm -rf "$DATA_DIR" "$LOG_DIR"
      say "removed $DATA_DIR and $LOG_DIR (install kept)" ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
