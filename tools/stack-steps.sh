#!/usr/bin/env bash
# stack.sh's steps once the daemons run: devstack-style users and credentials, devstack's
# initial networks, the `kumo-public` namespace outside `public`, and the test guest as the
# `cirros-like` images. Sourced after tools/lib.sh (log, die, KUMO_ROOT).
# Invariants: every step is idempotent and completes what a run cut short left (an object
# made, an upload not finished); the credentials go to KUMO_ETC (/etc/kumo), which the
# walkthrough test points at its own directory to run these very steps on its lab, and
# only /etc/kumo's become the machine's /etc/openstack/clouds.yaml or run as the `kumo` user.

KUMO_ETC=${KUMO_ETC:-/etc/kumo}

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
  if [ "$KUMO_ETC" = /etc/kumo ] && [ -d /run/systemd/system ] && id kumo >/dev/null 2>&1; then
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

# kumo_os CLOUD ARGS…: `openstack` as KUMO_ETC's clouds.yaml entry CLOUD (devstack-admin:
# the admin, devstack: the demo user).
kumo_os() { OS_CLIENT_CONFIG_FILE="$KUMO_ETC/clouds.yaml" openstack --os-cloud "$@"; }

# Whether a command succeeds, its output dropped.
kumo_quiet() { "$@" >/dev/null 2>&1; }

# kumo_initial_networks: devstack's create_neutron_initial_network, once: the admin's
# external `public` network (flat on physnet public, 172.24.4.0/24, no DHCP) and the demo
# project's `private` network (10.0.0.0/26) with `router1` routing it to `public`.
kumo_initial_networks() {
  local admin=(kumo_os devstack-admin) demo=(kumo_os devstack)
  # Each object on its own, so a run cut short is completed by the next one.
  kumo_quiet "${admin[@]}" network show public || {
    log "creating devstack's initial networks (public, private, router1)"
    "${admin[@]}" network create public --external --provider-network-type flat \
      --provider-physical-network public >/dev/null
  }
  kumo_quiet "${admin[@]}" subnet show public-subnet ||
    "${admin[@]}" subnet create public-subnet --network public --subnet-range 172.24.4.0/24 \
      --gateway 172.24.4.1 --allocation-pool start=172.24.4.2,end=172.24.4.254 --no-dhcp >/dev/null
  kumo_quiet "${demo[@]}" network show private || "${demo[@]}" network create private >/dev/null
  kumo_quiet "${demo[@]}" subnet show private-subnet ||
    "${demo[@]}" subnet create private-subnet --network private --subnet-range 10.0.0.0/26 >/dev/null
  kumo_quiet "${demo[@]}" router show router1 || "${demo[@]}" router create router1 >/dev/null
  [ -n "$("${demo[@]}" router show router1 -f value -c external_gateway_info 2>/dev/null | grep -v '^None$')" ] ||
    "${demo[@]}" router set router1 --external-gateway public >/dev/null
  local sub ports
  sub=$("${demo[@]}" subnet show private-subnet -f value -c id)
  ports=$("${demo[@]}" port list --router router1 -f value -c fixed_ips)
  grep -q "$sub" <<<"$ports" ||
    "${demo[@]}" router add subnet router1 private-subnet >/dev/null
}

# kumo_image NAME FORMAT FILE [OPTION…]: prints the id of the active image NAME, uploading
# FILE as a public FORMAT image with OPTIONs when there is none. An image of that name that
# is not active (an upload cut short leaves one queued) is deleted first.
kumo_image() {
  local name=$1 format=$2 file=$3 list id status
  shift 3
  list=$(kumo_os devstack-admin image list --name "$name" -f value -c ID -c Status) ||
    die "cannot list the images named $name"
  while read -r id status; do
    [ -n "$id" ] || continue
    if [ "$status" = active ]; then echo "$id"; return 0; fi
    log "deleting image $name ($id): $status, not active"
    kumo_os devstack-admin image delete "$id"
  done <<<"$list"
  kumo_os devstack-admin image create "$name" --public --disk-format "$format" --container-format "$format" \
    --file "$file" "$@" -f value -c id
}

# kumo_guest_images: devstack's cirros UEC images, made of the test guest instead of a
# download (tools/guest-image.ts builds it into KUMO_GUEST_DIR): public images
# `cirros-like-kernel` (aki), `cirros-like-ramdisk` (ari) and `cirros-like` (ami, a 1 MiB
# disk whose kernel_id/ramdisk_id name them; `kumo.seed` on its command line: the guest
# serves its name on port 80 and prints the metadata listings on its console,
# test/helpers/seed-guest.ts).
kumo_guest_images() {
  local dir=${KUMO_GUEST_DIR:-/var/lib/kumo/guest} built g k r
  built=$(kumo_os devstack-admin image list --name cirros-like -f value -c Status 2>/dev/null || true)
  grep -qx active <<<"$built" && return 0
  built=$(node "$KUMO_ROOT/tools/guest-image.ts" "$dir") || die "building the test guest failed (tools/guest-image.ts)"
  mapfile -t g <<<"$built"
  [ "${#g[@]}" -eq 3 ] && [ -f "${g[0]}" ] && [ -f "${g[1]}" ] && [ -n "${g[2]}" ] ||
    die "tools/guest-image.ts printed no kernel, initramfs and command line: $built"
  log "uploading the test guest as the cirros-like images"
  k=$(kumo_image cirros-like-kernel aki "${g[0]}")
  r=$(kumo_image cirros-like-ramdisk ari "${g[1]}")
  truncate -s 1M "$dir/cirros-like.disk"
  kumo_image cirros-like ami "$dir/cirros-like.disk" --property kernel_id="$k" \
    --property ramdisk_id="$r" --property os_command_line="${g[2]} kumo.seed" >/dev/null
}

# kumo_public_namespace: the world outside devstack's `public` network, as a namespace
# (HOST-LAB: an external network is one more namespace, so the host's own interfaces and
# routes are never touched): `kumo-public` holds public-subnet's gateway 172.24.4.1/24 on
# eth0, a veth whose other end, kumo-pub-ex, is a port of br-ex (made by the OVS agent from
# bridge_mappings). Floating IPs answer there: `ip netns exec kumo-public curl …`.
# ./unstack.sh leaves it, as it leaves the namespaces the agents made.
kumo_public_namespace() {
  for _ in $(seq 1 30); do ovs-vsctl --timeout=5 br-exists br-ex && break; sleep 1; done
  ovs-vsctl --timeout=5 br-exists br-ex || die "no br-ex: kumo-ovs-agent makes it from [ovs] bridge_mappings"
  [ -e /run/netns/kumo-public ] || ip netns add kumo-public
  if ! ip link show kumo-pub-ex >/dev/null 2>&1; then
    log "making the kumo-public namespace (172.24.4.1, the public network's gateway)"
    ip link add kumo-pub-ex type veth peer name eth0 netns kumo-public
  fi
  ovs-vsctl --timeout=5 --may-exist add-port br-ex kumo-pub-ex
  # TX checksum offload off on both ends (OVS's userspace datapath: tools/tx-off.py).
  python3 "$KUMO_ROOT/tools/tx-off.py" kumo-pub-ex
  ip netns exec kumo-public python3 "$KUMO_ROOT/tools/tx-off.py" eth0
  ip link set kumo-pub-ex up
  ip netns exec kumo-public ip link set lo up
  ip netns exec kumo-public ip addr replace 172.24.4.1/24 dev eth0
  ip netns exec kumo-public ip link set eth0 up
}
