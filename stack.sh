#!/usr/bin/env bash
# Sets up and starts Kumo all-in-one on this host, as root (like devstack's stack.sh):
# system packages, Node 24, npm dependencies, RabbitMQ with its own vhost and user,
# /etc/kumo/kumo.conf, kumo-api on SQLite (with Keystone v3 on port 5000) and the six
# agents; bootstraps the `admin` (project admin, role admin) and `demo` (project demo, role
# member) users with generated passwords and writes devstack-style credentials
# (/etc/kumo/openrc, `source openrc admin admin`, and clouds.yaml); ends with
# `kumo agent-list`; then devstack's initial networks: `public` (flat, physnet public on
# br-ex, router:external, 172.24.4.0/24) and the demo project's `private` network with
# `router1` between them; the `kumo-public` namespace as the world outside `public`
# (172.24.4.1); and the test guest as the public `cirros-like` images, so the tour
# (docs/tour.md) boots servers with no download.
# Running it again is harmless: what exists is kept, what is running is left running.
# ./unstack.sh stops everything it started.
set -euo pipefail
cd "$(dirname "$0")"
# shellcheck source=tools/lib.sh
source tools/lib.sh
# This host's own credentials (tools/stack-steps.sh honours KUMO_ETC for the tests' labs).
KUMO_ETC=/etc/kumo
# shellcheck source=tools/stack-steps.sh
source tools/stack-steps.sh
kumo_require_root

CONF=/etc/kumo/kumo.conf
RUN=/run/kumo
LOGS=/var/log/kumo
DAEMONS=(kumo-api kumo-ovs-agent kumo-dhcp-agent kumo-l3-agent kumo-lbaas-agent kumo-volume-agent kumo-compute-agent)

kumo_install_packages
kumo_install_node
kumo_install_npm_deps
mkdir -p "$RUN" "$LOGS" /var/lib/kumo/api /etc/kumo
# Remember which services this script started, so ./unstack.sh stops only those.
rabbitmqctl -q status >/dev/null 2>&1 || touch "$RUN/started-rabbitmq"
kumo_start_rabbitmq
ovs-vsctl --timeout=2 show >/dev/null 2>&1 || touch "$RUN/started-ovs"
kumo_start_ovs
pgrep -x libvirtd >/dev/null || touch "$RUN/started-libvirtd"
kumo_start_libvirtd
tgtadm --lld iscsi --op show --mode sys >/dev/null 2>&1 || touch "$RUN/started-tgtd"
kumo_start_tgtd

secret() { head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24; }

# Volumes all-in-one: sparse files (this kernel has no device-mapper, so LVM volumes could
# not be exported), served by tgtd on loopback.
kumo_volume_section() {
  cat <<VOLUME
[volume]
volume_driver = file
default_volume_type = file
volumes_dir = /var/lib/kumo/volume/files
target_ip_address = 127.0.0.1
target_port = 3260
VOLUME
}

# The config is written once; later runs keep it (and any operator edits).
if [ ! -f "$CONF" ]; then
  log "writing $CONF"
  datapath=system; [ -d /sys/module/openvswitch ] || datapath=netdev
  virt=kvm
  # HOST-LAB: /dev/kvm exists here (kvm_pvm) but guests spin; KVM needs the CPU's
  # vmx/svm flags, and without them the guests run under TCG.
  grep -qw -e vmx -e svm /proc/cpuinfo || virt=qemu
  [ -n "${KUMO_VIRT_TYPE:-}" ] && virt=$KUMO_VIRT_TYPE
  umask 077
  cat > "$CONF" <<CONF
[DEFAULT]
host = $(hostname -s)
state_path = /var/lib/kumo
transport_url = rabbit://kumo:$(secret)@127.0.0.1:5672/kumo
agent_down_time = 30
# Prometheus metrics on 127.0.0.1: kumo-api 9180, the agents 9181…9186 (README).
metrics_port = 9180

[agent]
report_interval = 10
tunnel_types = vxlan

[api]
bind_host = 127.0.0.1
bind_port = 9696
admin_token = $(secret)
service_token = $(secret)
# kumo-api's state lives under /var/lib/kumo/api, the one state directory its systemd
# unit may write (ReadWritePaths).
image_dir = /var/lib/kumo/api/images

[identity]
bind_host = 127.0.0.1
bind_port = 5000
key_repository = /var/lib/kumo/api/token-keys

[database]
connection = sqlite:////var/lib/kumo/api/kumo.sqlite

[ovs]
datapath_type = $datapath
local_ip = 127.0.0.1
# devstack's public network: physnet 'public' on br-ex (no uplink: nothing leaves the host).
bridge_mappings = public:br-ex

[compute]
virt_type = $virt
instances_path = /var/lib/kumo/instances

[metadata]
bind_host = 127.0.0.1
bind_port = 8775
metadata_proxy_shared_secret = $(secret)

$(kumo_volume_section)
CONF
  umask 022
fi
# Configs written before compute agents fetched images lack the service token.
if ! grep -q '^service_token' "$CONF"; then
  sed -i "/^\[api\]/a service_token = $(secret)" "$CONF"
fi
# Configs written before identity lack [identity]: kumo-api (the unprivileged `kumo` user
# under systemd) must be able to write its token keys, so they live under /var/lib/kumo/api.
if ! grep -q '^\[identity\]' "$CONF"; then
  printf '\n[identity]\nbind_host = 127.0.0.1\nbind_port = 5000\nkey_repository = /var/lib/kumo/api/token-keys\n' >> "$CONF"
fi
# Configs written before instance metadata lack its shared secret.
if ! grep -q '^metadata_proxy_shared_secret' "$CONF"; then
  if grep -q '^\[metadata\]' "$CONF"; then
    sed -i "/^\[metadata\]/a metadata_proxy_shared_secret = $(secret)" "$CONF"
  else
    printf '\n[metadata]\nmetadata_proxy_shared_secret = %s\n' "$(secret)" >> "$CONF"
  fi
fi
# Configs written before volumes lack [volume].
if ! grep -q '^\[volume\]' "$CONF"; then
  printf '\n%s\n' "$(kumo_volume_section)" >> "$CONF"
fi
# Configs written before the L3 agent lack the public physnet.
restart_ovs=
if ! grep -q '^bridge_mappings' "$CONF"; then
  sed -i "/^\[ovs\]/a bridge_mappings = public:br-ex" "$CONF"
  restart_ovs=1
fi
rabbit_password=$(sed -n 's|^transport_url *= *rabbit://kumo:\([^@]*\)@.*|\1|p' "$CONF")
[ -n "$rabbit_password" ] || die "cannot read the RabbitMQ password from transport_url in $CONF"
kumo_rabbit_account kumo kumo "$rabbit_password"

for d in "${DAEMONS[@]}" kumo kumo-manage; do ln -sf "$KUMO_ROOT/bin/$d.ts" "/usr/local/bin/$d"; done

running() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

if [ -d /run/systemd/system ]; then
  log "installing systemd units"
  install -m 0644 systemd/*.service /etc/systemd/system/
  install -m 0644 systemd/kumo.tmpfiles.conf /etc/tmpfiles.d/kumo.conf
  install -m 0644 systemd/kumo.sysusers.conf /etc/sysusers.d/kumo.conf
  systemd-sysusers && systemd-tmpfiles --create /etc/tmpfiles.d/kumo.conf
  chgrp kumo "$CONF" && chmod 0640 "$CONF"
  systemctl daemon-reload
  systemctl enable --now "${DAEMONS[@]}"
  [ -z "$restart_ovs" ] || systemctl restart kumo-ovs-agent
else
  # No systemd as PID 1 (containers, this lab): run the daemons detached, pid files in
  # /run/kumo and JSON logs in /var/log/kumo.
  # A config that just gained bridge_mappings: the OVS agent reads it at start.
  if [ -n "$restart_ovs" ] && running kumo-ovs-agent; then
    kill "$(cat "$RUN/kumo-ovs-agent.pid")"; sleep 1
  fi
  for d in "${DAEMONS[@]}"; do
    if running "$d"; then continue; fi
    log "starting $d"
    setsid "/usr/local/bin/$d" --config-file "$CONF" >>"$LOGS/$d.log" 2>&1 < /dev/null &
    echo $! > "$RUN/$d.pid"
    [ "$d" = kumo-api ] && sleep 1
  done
fi

kumo_wait_identity "$CONF"
kumo_bootstrap_user "$CONF" admin admin admin
kumo_bootstrap_user "$CONF" demo demo member
kumo_write_credentials "$CONF"

log "waiting for the agents to report"
for _ in $(seq 1 60); do
  alive=$(kumo --config-file "$CONF" agent-list -f value -c alive 2>/dev/null | grep -c True || true)
  [ "$alive" -ge 6 ] && break
  sleep 1
done
kumo --config-file "$CONF" agent-list
kumo_initial_networks
kumo_public_namespace
kumo_guest_images
log "credentials: source $KUMO_ROOT/openrc admin admin (or demo demo), or --os-cloud devstack-admin"
log "tour: docs/tour.md (images cirros-like, network private, router1, outside: ip netns exec kumo-public …)"
log "dashboard: http://127.0.0.1:9696/dashboard (user admin, project admin, password in /etc/kumo/admin-password)"
