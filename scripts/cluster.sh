#!/usr/bin/env bash
# Run a local 3-node respkv cluster in the background (config/node1..3.toml).
#
#   scripts/cluster.sh start            start every node that is not running
#   scripts/cluster.sh stop             SIGTERM every node (clean shutdown)
#   scripts/cluster.sh status           pid, role, term and leader of each node
#   scripts/cluster.sh kill N           SIGKILL node N (a crash)
#   scripts/cluster.sh restart N        stop (or kill) node N and start it again
#   scripts/cluster.sh start N          start only node N
#   scripts/cluster.sh logs N           follow node N's log
#
# Logs and pid files live in $RUN_DIR (default ./run); data in ./data (db_root_dir).
# CONFIG_PREFIX=n uses config/n1..3.toml (the dynamic-expansion layout, see scripts/expand.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN_DIR=${RUN_DIR:-./run}
NODES=(1 2 3)
CONFIG_PREFIX=${CONFIG_PREFIX:-node}
PYTHON=${PYTHON:-python3}
mkdir -p "$RUN_DIR"

pidfile() { echo "$RUN_DIR/node$1.pid"; }
running() { [ -f "$(pidfile "$1")" ] && kill -0 "$(cat "$(pidfile "$1")")" 2>/dev/null; }
config() { echo "config/${CONFIG_PREFIX}$1.toml"; }
port() { sed -n 's/^port = \([0-9]*\)/\1/p' "$(config "$1")"; }

start_node() {
  if running "$1"; then echo "node $1 already running (pid $(cat "$(pidfile "$1")"))"; return; fi
  nohup "$PYTHON" -m respkv.server.cli serve --config "$(config "$1")" \
    >>"$RUN_DIR/node$1.log" 2>&1 &
  echo $! >"$(pidfile "$1")"
  echo "node $1 started (pid $!, client port $(port "$1"), log $RUN_DIR/node$1.log)"
}

stop_node() {
  if ! running "$1"; then echo "node $1 not running"; rm -f "$(pidfile "$1")"; return; fi
  local pid; pid=$(cat "$(pidfile "$1")")
  kill -TERM "$pid"
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; echo "node $1 killed (did not stop in 10 s)"
  else echo "node $1 stopped"; fi
  rm -f "$(pidfile "$1")"
}

kill_node() {
  if running "$1"; then kill -KILL "$(cat "$(pidfile "$1")")"; echo "node $1 killed (SIGKILL)"; fi
  rm -f "$(pidfile "$1")"
}

status_node() {
  if running "$1"; then
    local info
    info=$(redis-cli -p "$(port "$1")" INFO raft 2>/dev/null | tr -d '\r' \
      | awk -F: '/^raft_(role|term|leader_id|commit_index)/{printf "%s=%s ", substr($1,6), $2}')
    echo "node $1: pid $(cat "$(pidfile "$1")"), port $(port "$1"): ${info:-not answering}"
  else
    echo "node $1: not running"
  fi
}

cmd=${1:-status}
shift || true
targets=("${@:-${NODES[@]}}")
case "$cmd" in
  start) for n in "${targets[@]}"; do start_node "$n"; done ;;
  stop) for n in "${targets[@]}"; do stop_node "$n"; done ;;
  status) for n in "${targets[@]}"; do status_node "$n"; done ;;
  kill) [ $# -eq 1 ] || { echo "usage: $0 kill N" >&2; exit 2; }; kill_node "$1" ;;
  restart) [ $# -eq 1 ] || { echo "usage: $0 restart N" >&2; exit 2; }; stop_node "$1"; start_node "$1" ;;
  logs) [ $# -eq 1 ] || { echo "usage: $0 logs N" >&2; exit 2; }; tail -f "$RUN_DIR/node$1.log" ;;
  *) sed -n '2,12p' "$0"; exit 2 ;;
esac
