#!/usr/bin/env bash
# The seed docs' "Dynamic Expansion (Zero Downtime)", step by step, with config/n1..3.toml:
#
#   scripts/expand.sh start-node1   node 1 alone (a single-voter cluster that takes writes)
#   scripts/expand.sh join-node2    node 2 joins as a learner, syncs, is promoted to voter
#   scripts/expand.sh join-node3    node 3 joins right after (do NOT stop at 2 nodes)
#   scripts/expand.sh status        CLUSTER STATUS members as node 1 sees them
#   scripts/expand.sh stop          stop all three
#
# Data goes to ./db (db_root_dir in the configs), logs and pids to ./run.
set -euo pipefail
cd "$(dirname "$0")/.."
export CONFIG_PREFIX=n
case "${1:-}" in
  start-node1) scripts/cluster.sh start 1 ;;
  join-node2) scripts/cluster.sh start 2 ;;
  join-node3) scripts/cluster.sh start 3 ;;
  status)
    scripts/cluster.sh status
    redis-cli -p 6379 --no-raw CLUSTER STATUS 2>/dev/null | sed -n '/members/,$p' || true
    ;;
  stop) scripts/cluster.sh stop ;;
  *) sed -n '2,10p' "$0"; exit 2 ;;
esac
