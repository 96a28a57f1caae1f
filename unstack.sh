#!/usr/bin/env bash
# Stops what ./stack.sh started: the Kumo daemons, then RabbitMQ and Open vSwitch if
# stack.sh started them. Configuration and state (/etc/kumo, /var/lib/kumo) are kept,
# so ./stack.sh brings the same deployment back.
set -euo pipefail
cd "$(dirname "$0")"
# shellcheck source=tools/lib.sh
source tools/lib.sh
kumo_require_root

RUN=/run/kumo
DAEMONS=(kumo-compute-agent kumo-volume-agent kumo-lbaas-agent kumo-l3-agent kumo-dhcp-agent kumo-ovs-agent kumo-api)

if [ -d /run/systemd/system ] && [ -f /etc/systemd/system/kumo-api.service ]; then
  systemctl stop "${DAEMONS[@]}" || true
fi
for d in "${DAEMONS[@]}"; do
  pidfile="$RUN/$d.pid"
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $d"
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$pidfile"
done
if [ -f "$RUN/started-rabbitmq" ]; then
  log "stopping RabbitMQ"
  rabbitmqctl -q shutdown >/dev/null 2>&1 || true
  rm -f "$RUN/started-rabbitmq"
fi
if [ -f "$RUN/started-tgtd" ]; then
  log "stopping tgtd"
  if [ -d /run/systemd/system ]; then systemctl stop tgt || true
  else kumo_stop_tgtd; fi
  rm -f "$RUN/started-tgtd"
fi
if [ -f "$RUN/started-libvirtd" ]; then
  log "stopping libvirtd"
  pkill -x libvirtd || true
  pkill -x virtlogd || true
  rm -f "$RUN/started-libvirtd"
fi
if [ -f "$RUN/started-ovs" ]; then
  log "stopping Open vSwitch"
  /usr/share/openvswitch/scripts/ovs-ctl stop >/dev/null 2>&1 || true
  rm -f "$RUN/started-ovs"
fi
log "stopped"
