#!/usr/bin/env bash
# make demo: create a pod, look inside it, publish a port, remove it.
# Runs in a private state root and network namespace so it touches nothing
# else on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
podctl=$PWD/bin/podctl
root=$(mktemp -d /tmp/podctl-demo.XXXXXX)
ns=podctl-demo-$$
ip netns add "$ns"
cleanup() {
  "$podctl" --root "$root" rm -f demo >/dev/null 2>&1 || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$root"
}
trap cleanup EXIT
ip netns exec "$ns" ip link set lo up
# nsenter --net, not `ip netns exec`: the latter would also give podctl a
# throwaway mount namespace, and the pod's root filesystem with it.
run() { echo "\$ podctl $*"; nsenter --net=/run/netns/"$ns" "$podctl" --root "$root" "$@"; }
step() { printf '\n== %s\n' "$*"; }

step "a pod: its own PID, mount, network, UTS and IPC namespaces, cgroup and overlay root"
run create --name demo -p 8080:8000 --memory 128m -- \
  sh -c 'echo "hello from $(hostname)"; mkdir -p /srv; echo "served by pod demo" > /srv/index.html; cd /srv; exec python3 -m http.server 8000'
run ps
step "inside: PID 1 is podctl's init, only the pod's processes are visible"
run exec demo -- ps -eo pid,ppid,sid,comm
step "inside: hostname, interfaces, routes"
run exec demo -- sh -c 'hostname; ip -br addr; ip route'
step "the published port, from the host"
nsenter --net=/run/netns/"$ns" curl -sS --retry 20 --retry-connrefused --retry-delay 1 http://127.0.0.1:8080/
step "its log"
run logs demo
step "inspect"
run inspect demo | head -30
step "remove: processes, cgroup, mounts, veth, nftables rules, lease and directory"
run rm -f demo
run ps
echo
echo "demo done"
