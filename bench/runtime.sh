#!/usr/bin/env bash
# Runtime throughput and scheduler memory with builtin tasks (no Python cost), through
# the real gRPC path: `shoal bench` starts its own scheduler and 2 worker processes.
# Prints one line per run; TASKS overrides the graph size (default 1,000,000).
set -euo pipefail
cd "$(dirname "$0")/.."
shoal=${SHOAL_BIN:-target/release/shoal}
tasks=${TASKS:-1000000}
for graph in map tree shuffle; do
  printf '%-8s ' "$graph"
  SHOAL_LOG=warn "$shoal" bench --workers 2 --graph "$graph" --tasks "$tasks" 2>/dev/null | tail -n 1
done
