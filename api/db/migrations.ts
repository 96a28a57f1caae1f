/**
 * Schema migrations: one ordered list, valid SQL for both SQLite and PostgreSQL.
 *
 * Invariant: migrations are append-only; `migrate` applies each exactly once, in order,
 * inside a transaction that also records it, so a crash never leaves half a migration.
 * Several API replicas starting at once are serialised by the migrations table lock.
 */
import type { Db } from './index.ts';

export const MIGRATIONS: readonly { version: number; name: string; sql: string[] }[] = [
  {
    version: 1,
    name: 'agents',
    sql: [
      `CREATE TABLE agents (
        id TEXT PRIMARY KEY,
        agent_type TEXT NOT NULL,
        "binary" TEXT NOT NULL,
        topic TEXT NOT NULL,
        host TEXT NOT NULL,
        availability_zone TEXT,
        admin_state_up BOOLEAN NOT NULL,
        description TEXT,
        configurations TEXT NOT NULL,
        resource_versions TEXT NOT NULL,
        created_at TEXT NOT NULL,
        started_at TEXT NOT NULL,
        heartbeat_timestamp TEXT NOT NULL,
        UNIQUE (agent_type, host)
      )`,
      'CREATE INDEX agents_heartbeat ON agents (heartbeat_timestamp)',
    ],
  },
  {
    version: 2,
    name: 'networks, subnets, ports, ipallocations',
    sql: [
      `CREATE TABLE networks (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL,
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        admin_state_up BOOLEAN NOT NULL,
        shared BOOLEAN NOT NULL,
        external BOOLEAN NOT NULL,
        status TEXT NOT NULL,
        mtu INTEGER NOT NULL,
        network_type TEXT NOT NULL,
        physical_network TEXT,
        segmentation_id BIGINT,
        revision_number INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      )`,
      // One row per allocated segment; the primary key is what makes an id single-use.
      // physical_network is '' for tunnels, segmentation_id 0 for flat networks.
      `CREATE TABLE network_segments (
        network_type TEXT NOT NULL,
        physical_network TEXT NOT NULL,
        segmentation_id BIGINT NOT NULL,
        network_id TEXT NOT NULL UNIQUE REFERENCES networks (id) ON DELETE CASCADE,
        PRIMARY KEY (network_type, physical_network, segmentation_id)
      )`,
      `CREATE TABLE subnets (
        id TEXT PRIMARY KEY,
        network_id TEXT NOT NULL REFERENCES networks (id),
        project_id TEXT NOT NULL,
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        ip_version INTEGER NOT NULL,
        cidr TEXT NOT NULL,
        gateway_ip TEXT,
        enable_dhcp BOOLEAN NOT NULL,
        allocation_pools TEXT NOT NULL,
        dns_nameservers TEXT NOT NULL,
        host_routes TEXT NOT NULL,
        revision_number INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      )`,
      'CREATE INDEX subnets_network ON subnets (network_id)',
      `CREATE TABLE ports (
        id TEXT PRIMARY KEY,
        network_id TEXT NOT NULL REFERENCES networks (id),
        project_id TEXT NOT NULL,
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        mac_address TEXT NOT NULL,
        admin_state_up BOOLEAN NOT NULL,
        status TEXT NOT NULL,
        device_id TEXT NOT NULL,
        device_owner TEXT NOT NULL,
        host_id TEXT NOT NULL,
        vnic_type TEXT NOT NULL,
        profile TEXT NOT NULL,
        revision_number INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (network_id, mac_address)
      )`,
      'CREATE INDEX ports_device ON ports (device_id)',
      `CREATE TABLE ipallocations (
        subnet_id TEXT NOT NULL REFERENCES subnets (id),
        ip_address TEXT NOT NULL,
        port_id TEXT NOT NULL REFERENCES ports (id) ON DELETE CASCADE,
        network_id TEXT NOT NULL,
        PRIMARY KEY (subnet_id, ip_address)
      )`,
      'CREATE INDEX ipallocations_port ON ipallocations (port_id)',
    ],
  },
  {
    version: 3,
    name: 'tunnel_endpoints',
    sql: [
      // One tunnel endpoint per L2 agent host (Neutron's ml2_*_endpoints), announced to peers.
      `CREATE TABLE tunnel_endpoints (
        host TEXT PRIMARY KEY,
        ip TEXT NOT NULL,
        types TEXT NOT NULL
      )`,
    ],
  },
  {
    version: 4,
    name: 'network_dhcp_agent_bindings',
    sql: [
      // Which DHCP agents serve a network (Neutron's networkdhcpagentbindings); a binding
      // goes with its network and with its agent row.
      `CREATE TABLE network_dhcp_agent_bindings (
        network_id TEXT NOT NULL REFERENCES networks (id) ON DELETE CASCADE,
        agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
        PRIMARY KEY (network_id, agent_id)
      )`,
      'CREATE INDEX network_dhcp_agent_bindings_agent ON network_dhcp_agent_bindings (agent_id)',
      // One scheduler-made DHCP port per (host, network): its device_id,
      // dhcp<uuid5(host)>-<network_id>, names both, so two API replicas creating the same
      // port at once cannot both succeed. Other ports may share device ids as in Neutron.
      `CREATE UNIQUE INDEX ports_dhcp_device ON ports (device_id)
        WHERE device_owner = 'network:dhcp' AND device_id LIKE 'dhcp________-____-5___-____-____________-%'`,
    ],
  },
  {
    version: 5,
    name: 'flavors, images',
    sql: [
      // Nova flavors; ephemeral, swap and rxtx_factor are fixed (0, none, 1.0) for now.
      `CREATE TABLE flavors (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        vcpus INTEGER NOT NULL,
        ram INTEGER NOT NULL,
        disk INTEGER NOT NULL,
        is_public BOOLEAN NOT NULL,
        description TEXT,
        created_at TEXT NOT NULL
      )`,
      `INSERT INTO flavors (id, name, vcpus, ram, disk, is_public, description, created_at) VALUES
        ('1', 'm1.tiny', 1, 512, 1, TRUE, NULL, '2026-01-01T00:00:00Z'),
        ('2', 'm1.small', 1, 2048, 20, TRUE, NULL, '2026-01-01T00:00:00Z'),
        ('3', 'm1.medium', 2, 4096, 40, TRUE, NULL, '2026-01-01T00:00:00Z'),
        ('4', 'm1.large', 4, 8192, 80, TRUE, NULL, '2026-01-01T00:00:00Z')`,
      // Glance images; the data lives in <image_dir>/<id>, extra properties as JSON.
      `CREATE TABLE images (
        id TEXT PRIMARY KEY,
        name TEXT,
        status TEXT NOT NULL,
        visibility TEXT NOT NULL,
        protected BOOLEAN NOT NULL,
        os_hidden BOOLEAN NOT NULL,
        disk_format TEXT,
        container_format TEXT,
        min_disk INTEGER NOT NULL,
        min_ram INTEGER NOT NULL,
        size BIGINT,
        checksum TEXT,
        os_hash_algo TEXT,
        os_hash_value TEXT,
        tags TEXT NOT NULL,
        properties TEXT NOT NULL,
        owner TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      )`,
      'CREATE INDEX images_created ON images (created_at)',
    ],
  },
  {
    version: 6,
    name: 'instances',
    sql: [
      // Nova instances, soft-deleted (deleted_at) so a late agent report still finds its row.
      // The flavor and the boot images' identity (checksums, formats, cmdline) are copied in
      // at create: the instance keeps what it booted from even if they are deleted later.
      // kept_ports: ports the user handed in ({port}); they are unbound, not deleted, with it.
      // port_order: the instance's ports in the order requested (its NICs' order).
      `CREATE TABLE instances (
        id TEXT PRIMARY KEY,
        seq BIGINT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        project_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        flavor_id TEXT NOT NULL,
        flavor_name TEXT NOT NULL,
        vcpus INTEGER NOT NULL,
        memory_mb INTEGER NOT NULL,
        root_gb INTEGER NOT NULL,
        image_id TEXT NOT NULL,
        image_meta TEXT NOT NULL,
        host TEXT NOT NULL,
        vm_state TEXT NOT NULL,
        task_state TEXT,
        task_id INTEGER NOT NULL,
        power_state INTEGER NOT NULL,
        fault TEXT,
        metadata TEXT NOT NULL,
        timings TEXT,
        kept_ports TEXT NOT NULL,
        port_order TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        launched_at TEXT,
        deleted_at TEXT
      )`,
      'CREATE INDEX instances_host ON instances (host) WHERE deleted_at IS NULL',
      'CREATE INDEX instances_created ON instances (created_at)',
      // The last instance seq handed out (domain instance-%08x). Its one row is also the
      // compute scheduler's lock: every placement starts by bumping it, which on PostgreSQL
      // holds the row lock until commit, so placements never overcommit a host.
      `CREATE TABLE instance_sequence (
        id INTEGER PRIMARY KEY,
        last_seq BIGINT NOT NULL
      )`,
      'INSERT INTO instance_sequence (id, last_seq) VALUES (1, 0)',
    ],
  },
  {
    version: 7,
    name: 'agent_resource_status',
    sql: [
      // What an agent could not serve (report_status, ERROR with its reason): one row per
      // (agent type, host, resource kind, resource id) while its last report is ERROR.
      // Keyed by the agent's identity rather than its row: a report may be consumed before
      // the agent's first report_state (they travel on different queues) and must not be
      // lost. Rows go with the agent row's deletion and with the resource's.
      `CREATE TABLE agent_resource_status (
        agent_type TEXT NOT NULL,
        host TEXT NOT NULL,
        resource TEXT NOT NULL,
        resource_id TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (agent_type, host, resource, resource_id)
      )`,
    ],
  },
  {
    version: 8,
    name: 'agent_resource_status_parts',
    sql: [
      // A part an agent left out of a resource it serves (one port of a network): the row
      // names its parent, whose next status replaces all of its parts' rows at once.
      'ALTER TABLE agent_resource_status ADD COLUMN parent_resource TEXT',
      'ALTER TABLE agent_resource_status ADD COLUMN parent_id TEXT',
    ],
  },
  {
    version: 9,
    name: 'instance attributes of Nova 2.1-2.16',
    sql: [
      // accessIPv4/v6 as the user set them ('' when not); admin_pass: the password asked
      // for or generated at create/rebuild, for the metadata service to hand the guest;
      // reservation_id and launch_index: a multi-create's batch and the server's place in
      // it; locked_by: 'admin' or 'owner' while locked (Nova's locked_by), NULL otherwise;
      // soft_deleted_at: when a soft delete ([compute] reclaim_instance_interval) began;
      // security_groups: the names of the groups the server is in (JSON list).
      "ALTER TABLE instances ADD COLUMN access_ipv4 TEXT NOT NULL DEFAULT ''",
      "ALTER TABLE instances ADD COLUMN access_ipv6 TEXT NOT NULL DEFAULT ''",
      'ALTER TABLE instances ADD COLUMN admin_pass TEXT',
      "ALTER TABLE instances ADD COLUMN reservation_id TEXT NOT NULL DEFAULT ''",
      'ALTER TABLE instances ADD COLUMN launch_index INTEGER NOT NULL DEFAULT 0',
      'ALTER TABLE instances ADD COLUMN locked_by TEXT',
      'ALTER TABLE instances ADD COLUMN soft_deleted_at TEXT',
      `ALTER TABLE instances ADD COLUMN security_groups TEXT NOT NULL DEFAULT '["default"]'`,
    ],
  },
  {
    version: 10,
    name: 'image members',
    sql: [
      // Glance image members: the projects a shared image is offered to, and each one's
      // answer (pending, accepted, rejected); they go with their image.
      `CREATE TABLE image_members (
        image_id TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
        member_id TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (image_id, member_id)
      )`,
      'CREATE INDEX image_members_member ON image_members (member_id)',
    ],
  },
  {
    version: 11,
    name: 'identity: domains, projects, users, roles, assignments, revocations',
    sql: [
      // Keystone v3's model, one row per object. The Default domain's id is 'default', as
      // Keystone's; the three roles are seeded with fixed ids (admin implies member implies
      // reader: identity/roles.ts). A role assignment grants a role to a user on a project
      // (target_type 'project') or a domain ('domain').
      `CREATE TABLE domains (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        description TEXT NOT NULL DEFAULT '',
        enabled BOOLEAN NOT NULL,
        created_at TEXT NOT NULL
      )`,
      `CREATE TABLE projects (
        id TEXT PRIMARY KEY,
        domain_id TEXT NOT NULL REFERENCES domains (id),
        name TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        enabled BOOLEAN NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE (domain_id, name)
      )`,
      // password_hash: 'scrypt$N$r$p$salt$hash' (base64 parts); NULL: no password login.
      `CREATE TABLE users (
        id TEXT PRIMARY KEY,
        domain_id TEXT NOT NULL REFERENCES domains (id),
        name TEXT NOT NULL,
        password_hash TEXT,
        enabled BOOLEAN NOT NULL,
        default_project_id TEXT,
        email TEXT,
        description TEXT NOT NULL DEFAULT '',
        password_changed_at TEXT,
        created_at TEXT NOT NULL,
        UNIQUE (domain_id, name)
      )`,
      `CREATE TABLE roles (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        description TEXT NOT NULL DEFAULT ''
      )`,
      `CREATE TABLE role_assignments (
        user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        target_type TEXT NOT NULL,
        target_id TEXT NOT NULL,
        role_id TEXT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
        PRIMARY KEY (user_id, target_type, target_id, role_id)
      )`,
      'CREATE INDEX role_assignments_target ON role_assignments (target_id)',
      // Keystone's revocation events: a token matching every non-NULL column and issued at
      // or before issued_before (ms since the epoch) is refused. Rows older than the token
      // lifetime can match nothing and are pruned.
      `CREATE TABLE revocation_events (
        id TEXT PRIMARY KEY,
        user_id TEXT,
        project_id TEXT,
        audit_id TEXT,
        issued_before BIGINT NOT NULL,
        created_at TEXT NOT NULL
      )`,
      `INSERT INTO domains (id, name, description, enabled, created_at)
        VALUES ('default', 'Default', 'The default domain', TRUE, '2026-12-05T00:00:00Z')`,
      `INSERT INTO roles (id, name, description) VALUES
        ('8c3e4b1f2a6d4e0b9f1a2c3d4e5f6a70', 'admin', ''),
        ('8c3e4b1f2a6d4e0b9f1a2c3d4e5f6a71', 'member', ''),
        ('8c3e4b1f2a6d4e0b9f1a2c3d4e5f6a72', 'reader', '')`,
    ],
  },
  {
    version: 12,
    name: 'quotas, flavor access',
    sql: [
      // A project's limit for one resource where it differs from the configured default
      // (-1: unlimited). quota_locks: one row per (project, resource) that a create locks
      // (SELECT … FOR UPDATE on PostgreSQL) while it counts and inserts, so two creates in
      // one project are serialised and a limit of N admits exactly N.
      `CREATE TABLE quotas (
        project_id TEXT NOT NULL,
        resource TEXT NOT NULL,
        hard_limit INTEGER NOT NULL,
        PRIMARY KEY (project_id, resource)
      )`,
      `CREATE TABLE quota_locks (
        project_id TEXT NOT NULL,
        resource TEXT NOT NULL,
        PRIMARY KEY (project_id, resource)
      )`,
      // Nova's os-flavor-access: the projects a private flavor (is_public false) is
      // offered to.
      `CREATE TABLE flavor_access (
        flavor_id TEXT NOT NULL REFERENCES flavors (id) ON DELETE CASCADE,
        project_id TEXT NOT NULL,
        PRIMARY KEY (flavor_id, project_id)
      )`,
    ],
  },
  {
    version: 13,
    name: 'routers, floating IPs, L3 agent bindings',
    sql: [
      // Neutron's routers. gw_port_id: the router's port on its external network
      // (device_owner network:router_gateway), NULL without a gateway.
      `CREATE TABLE routers (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL,
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        admin_state_up BOOLEAN NOT NULL,
        status TEXT NOT NULL,
        gw_port_id TEXT REFERENCES ports (id),
        enable_snat BOOLEAN NOT NULL,
        revision_number INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      )`,
      // Every port a router owns (interfaces and the gateway), by its device_owner; a port
      // belongs to one router at most.
      `CREATE TABLE router_ports (
        router_id TEXT NOT NULL REFERENCES routers (id) ON DELETE CASCADE,
        port_id TEXT NOT NULL UNIQUE REFERENCES ports (id) ON DELETE CASCADE,
        port_type TEXT NOT NULL,
        PRIMARY KEY (router_id, port_id)
      )`,
      // extraroute: each (destination, nexthop) once per router.
      `CREATE TABLE router_routes (
        router_id TEXT NOT NULL REFERENCES routers (id) ON DELETE CASCADE,
        destination TEXT NOT NULL,
        nexthop TEXT NOT NULL,
        PRIMARY KEY (router_id, destination, nexthop)
      )`,
      // A floating IP holds its address through floating_port_id (device_owner
      // network:floatingip on the external network); associated, it names the fixed port,
      // the fixed address and the router that translates between them.
      `CREATE TABLE floatingips (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL,
        description TEXT NOT NULL,
        floating_network_id TEXT NOT NULL REFERENCES networks (id),
        floating_port_id TEXT NOT NULL UNIQUE REFERENCES ports (id),
        floating_ip_address TEXT NOT NULL,
        fixed_port_id TEXT REFERENCES ports (id),
        fixed_ip_address TEXT,
        router_id TEXT REFERENCES routers (id),
        status TEXT NOT NULL,
        revision_number INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (floating_network_id, fixed_port_id, fixed_ip_address)
      )`,
      'CREATE INDEX floatingips_router ON floatingips (router_id)',
      'CREATE INDEX floatingips_fixed_port ON floatingips (fixed_port_id)',
      // Which L3 agent hosts a router (legacy mode: exactly one); the primary key is what
      // keeps two API replicas from binding one router twice.
      `CREATE TABLE router_l3_agent_bindings (
        router_id TEXT PRIMARY KEY REFERENCES routers (id) ON DELETE CASCADE,
        agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE
      )`,
      'CREATE INDEX router_l3_agent_bindings_agent ON router_l3_agent_bindings (agent_id)',
    ],
  },
  {
    version: 14,
    name: 'security groups, port security, allowed address pairs',
    sql: [
      // Neutron's security groups. A project's `default` group is the row named in
      // default_security_groups (its primary key keeps two concurrent first uses from
      // making two).
      `CREATE TABLE securitygroups (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL,
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        revision_number INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      )`,
      'CREATE INDEX securitygroups_project ON securitygroups (project_id)',
      `CREATE TABLE default_security_groups (
        project_id TEXT PRIMARY KEY,
        security_group_id TEXT NOT NULL UNIQUE REFERENCES securitygroups (id) ON DELETE CASCADE
      )`,
      // protocol: as Neutron stores it, a lower-case name or a number as text, NULL for
      // any. remote_group_id: the group whose members' addresses the rule admits.
      `CREATE TABLE securitygrouprules (
        id TEXT PRIMARY KEY,
        security_group_id TEXT NOT NULL REFERENCES securitygroups (id) ON DELETE CASCADE,
        project_id TEXT NOT NULL,
        direction TEXT NOT NULL,
        ethertype TEXT NOT NULL,
        protocol TEXT,
        port_range_min INTEGER,
        port_range_max INTEGER,
        remote_ip_prefix TEXT,
        remote_group_id TEXT REFERENCES securitygroups (id) ON DELETE CASCADE,
        description TEXT NOT NULL,
        revision_number INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      )`,
      'CREATE INDEX securitygrouprules_group ON securitygrouprules (security_group_id)',
      'CREATE INDEX securitygrouprules_remote ON securitygrouprules (remote_group_id)',
      // A port's groups (a set). A group in use cannot be deleted (no cascade from it).
      `CREATE TABLE securitygroupportbindings (
        port_id TEXT NOT NULL REFERENCES ports (id) ON DELETE CASCADE,
        security_group_id TEXT NOT NULL REFERENCES securitygroups (id),
        PRIMARY KEY (port_id, security_group_id)
      )`,
      'CREATE INDEX securitygroupportbindings_group ON securitygroupportbindings (security_group_id)',
      // Ports made before this migration had no filtering; they keep none (false), so an
      // upgrade changes no data plane. New ports default to true.
      'ALTER TABLE ports ADD COLUMN port_security_enabled BOOLEAN NOT NULL DEFAULT FALSE',
      // port-security on networks: the default of the ports created on them.
      'ALTER TABLE networks ADD COLUMN port_security_enabled BOOLEAN NOT NULL DEFAULT TRUE',
      // allowed-address-pairs: ip_address is an address or a CIDR; mac_address is the
      // port's own when the client gave none.
      `CREATE TABLE allowedaddresspairs (
        port_id TEXT NOT NULL REFERENCES ports (id) ON DELETE CASCADE,
        mac_address TEXT NOT NULL,
        ip_address TEXT NOT NULL,
        PRIMARY KEY (port_id, mac_address, ip_address)
      )`,
    ],
  },
  {
    version: 15,
    name: 'keypairs, user data, config drive',
    sql: [
      // Nova's key pairs belong to users: a name is unique per user. seq is the integer id
      // Nova shows; type is ssh or x509.
      `CREATE TABLE keypairs (
        seq BIGINT NOT NULL UNIQUE,
        user_id TEXT NOT NULL,
        name TEXT NOT NULL,
        type TEXT NOT NULL,
        public_key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (user_id, name)
      )`,
      // What the instance booted with: the key's name and public key copied at create (the
      // metadata keeps serving them if the key pair is deleted), user data as given (base64).
      'ALTER TABLE instances ADD COLUMN key_name TEXT',
      'ALTER TABLE instances ADD COLUMN key_data TEXT',
      'ALTER TABLE instances ADD COLUMN user_data TEXT',
      'ALTER TABLE instances ADD COLUMN config_drive BOOLEAN NOT NULL DEFAULT FALSE',
    ],
  },
  {
    version: 16,
    name: 'LBaaS v1 pools, members, VIPs, health monitors, pool bindings',
    sql: [
      // A pool's revision_number is bumped by every change of the pool, its VIP, its
      // members and its monitor associations (and of an associated monitor): the agent
      // serves a revision, and an object whose status became PENDING_* at status_revision
      // turns ACTIVE once a revision at least that is served (status_revision 0: none).
      `CREATE TABLE lb_pools (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL,
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        subnet_id TEXT NOT NULL,
        protocol TEXT NOT NULL,
        lb_method TEXT NOT NULL,
        admin_state_up BOOLEAN NOT NULL,
        status TEXT NOT NULL,
        status_description TEXT,
        status_revision INTEGER NOT NULL,
        revision_number INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      )`,
      // One VIP per pool; its port (device_owner neutron:LOADBALANCER) is the VIP's own and
      // goes with it. cookie_name only with APP_COOKIE persistence.
      `CREATE TABLE lb_vips (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL,
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        pool_id TEXT NOT NULL UNIQUE REFERENCES lb_pools (id),
        subnet_id TEXT NOT NULL,
        port_id TEXT NOT NULL UNIQUE REFERENCES ports (id),
        address TEXT NOT NULL,
        protocol_port INTEGER NOT NULL,
        protocol TEXT NOT NULL,
        connection_limit INTEGER NOT NULL,
        persistence_type TEXT,
        cookie_name TEXT,
        admin_state_up BOOLEAN NOT NULL,
        status TEXT NOT NULL,
        status_description TEXT,
        status_revision INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      )`,
      // health: what the serving agent's haproxy last said of the member (ACTIVE or
      // INACTIVE, NULL before the first report), shown as its status once it is served.
      `CREATE TABLE lb_members (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL,
        pool_id TEXT NOT NULL REFERENCES lb_pools (id),
        address TEXT NOT NULL,
        protocol_port INTEGER NOT NULL,
        weight INTEGER NOT NULL,
        admin_state_up BOOLEAN NOT NULL,
        status TEXT NOT NULL,
        status_description TEXT,
        status_revision INTEGER NOT NULL,
        health TEXT,
        health_description TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (pool_id, address, protocol_port)
      )`,
      'CREATE INDEX lb_members_pool ON lb_members (pool_id)',
      `CREATE TABLE lb_health_monitors (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL,
        type TEXT NOT NULL,
        delay INTEGER NOT NULL,
        timeout INTEGER NOT NULL,
        max_retries INTEGER NOT NULL,
        http_method TEXT NOT NULL,
        url_path TEXT NOT NULL,
        expected_codes TEXT NOT NULL,
        admin_state_up BOOLEAN NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      )`,
      // A monitor associated with a pool, with the association's status (Neutron's
      // health_monitors_status); seq orders a pool's associations (the first admin-up one
      // is the check haproxy runs).
      `CREATE TABLE lb_pool_monitors (
        pool_id TEXT NOT NULL REFERENCES lb_pools (id) ON DELETE CASCADE,
        monitor_id TEXT NOT NULL REFERENCES lb_health_monitors (id),
        seq BIGINT NOT NULL,
        status TEXT NOT NULL,
        status_description TEXT,
        status_revision INTEGER NOT NULL,
        PRIMARY KEY (pool_id, monitor_id)
      )`,
      'CREATE INDEX lb_pool_monitors_monitor ON lb_pool_monitors (monitor_id)',
      `CREATE TABLE lb_pool_stats (
        pool_id TEXT PRIMARY KEY REFERENCES lb_pools (id) ON DELETE CASCADE,
        bytes_in BIGINT NOT NULL,
        bytes_out BIGINT NOT NULL,
        active_connections BIGINT NOT NULL,
        total_connections BIGINT NOT NULL
      )`,
      // Neutron's poolloadbalanceragentbindings: the one LBaaS agent serving a pool.
      `CREATE TABLE pool_loadbalancer_agent_bindings (
        pool_id TEXT PRIMARY KEY REFERENCES lb_pools (id) ON DELETE CASCADE,
        agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE
      )`,
      'CREATE INDEX pool_loadbalancer_agent_bindings_agent ON pool_loadbalancer_agent_bindings (agent_id)',
    ],
  },
  {
    version: 17,
    name: 'Cinder volumes, snapshots, types, attachments, user messages',
    sql: [
      // Two fixed types, one per backend (contracts/volume.ts VOLUME_BACKENDS); ids are
      // stable so a type id seen by a client stays valid on every replica.
      `CREATE TABLE volume_types (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        description TEXT,
        is_public BOOLEAN NOT NULL,
        backend TEXT NOT NULL,
        created_at TEXT NOT NULL
      )`,
      `INSERT INTO volume_types VALUES
        ('6f1ab9f4-4c3e-5b8e-9a51-1d2c7a0b3e01', 'lvm', 'LVM volumes exported over iSCSI', TRUE, 'lvm', '2026-12-05T00:00:00.000000'),
        ('6f1ab9f4-4c3e-5b8e-9a51-1d2c7a0b3e02', 'file', 'Sparse file volumes exported over iSCSI', TRUE, 'file', '2026-12-05T00:00:00.000000')`,
      // host: the volume agent's host once scheduled (NULL: none could take it). Every
      // change the storage host must serve bumps revision_number; a status waiting for it
      // (creating, extending, deleting, attaching, detaching) remembers status_revision and
      // moves on once the agent reports a revision at least that.
      // auth_*: the CHAP credentials, generated at create and again at every attach.
      // status_reason: why error. delete_requested: a DELETE or force-delete asked the
      // storage host to remove the data (an admin's status reset never does).
      // extend_size: the size an os-extend asks for, until the storage host serves it.
      `CREATE TABLE volumes (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        name TEXT,
        description TEXT,
        size INTEGER NOT NULL,
        status TEXT NOT NULL,
        volume_type_id TEXT NOT NULL REFERENCES volume_types (id),
        availability_zone TEXT NOT NULL,
        host TEXT,
        snapshot_id TEXT,
        source_volid TEXT,
        bootable BOOLEAN NOT NULL,
        metadata TEXT NOT NULL,
        auth_username TEXT NOT NULL,
        auth_secret TEXT NOT NULL,
        status_reason TEXT,
        status_revision INTEGER NOT NULL,
        revision_number INTEGER NOT NULL,
        delete_requested BOOLEAN NOT NULL DEFAULT FALSE,
        extend_size INTEGER,
        created_at TEXT NOT NULL,
        updated_at TEXT
      )`,
      'CREATE INDEX volumes_project ON volumes (project_id)',
      'CREATE INDEX volumes_host ON volumes (host)',
      `CREATE TABLE volume_snapshots (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        volume_id TEXT NOT NULL REFERENCES volumes (id),
        name TEXT,
        description TEXT,
        size INTEGER NOT NULL,
        status TEXT NOT NULL,
        metadata TEXT NOT NULL,
        status_reason TEXT,
        status_revision INTEGER NOT NULL,
        revision_number INTEGER NOT NULL,
        delete_requested BOOLEAN NOT NULL DEFAULT FALSE,
        created_at TEXT NOT NULL,
        updated_at TEXT
      )`,
      'CREATE INDEX volume_snapshots_volume ON volume_snapshots (volume_id)',
      // Cinder's attachment records behind Nova's os-volume_attachments (one per volume:
      // no multiattach). attached_host is the instance's compute host, initiator its
      // iSCSI name (from its agent's report); exported: the storage host has served
      // export_revision (its ACL admits the initiator), so the compute host is handed the
      // connection; attach_revision is what the compute host reports back for the attach
      // or detach it was asked; target_portal: the storage host's portal when it exported
      // (what the compute host keeps being handed, whatever the agent reports later).
      `CREATE TABLE volume_attachments (
        id TEXT PRIMARY KEY,
        volume_id TEXT NOT NULL UNIQUE REFERENCES volumes (id),
        instance_uuid TEXT NOT NULL,
        attached_host TEXT NOT NULL,
        initiator TEXT NOT NULL,
        device TEXT NOT NULL,
        attach_status TEXT NOT NULL,
        export_revision INTEGER NOT NULL,
        exported BOOLEAN NOT NULL,
        attach_revision INTEGER NOT NULL,
        target_portal TEXT,
        attached_at TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT
      )`,
      'CREATE INDEX volume_attachments_instance ON volume_attachments (instance_uuid)',
      // Cinder's user messages (microversion 3.3): why a volume or snapshot went to error.
      `CREATE TABLE volume_messages (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL,
        resource_type TEXT NOT NULL,
        resource_uuid TEXT NOT NULL,
        event_id TEXT NOT NULL,
        message TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
      )`,
      'CREATE INDEX volume_messages_project ON volume_messages (project_id)',
    ],
  },
  {
    version: 18,
    name: 'leases',
    sql: [
      // One row per periodic job (api/periodic.ts): the replica that runs it, until when.
      // Times are milliseconds of the database's own clock, so replicas' clocks may differ.
      `CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        acquired_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
      )`,
    ],
  },
];

export async function migrate(db: Db): Promise<number[]> {
  await db.query(
    'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)',
  );
  return db.transaction(async (tx) => {
    if (db.engine === 'postgres') await tx.query('LOCK TABLE schema_migrations IN EXCLUSIVE MODE');
    const done = new Set(
      (await tx.query<{ version: number }>('SELECT version FROM schema_migrations')).map((r) =>
        Number(r.version),
      ),
    );
    const applied: number[] = [];
    for (const m of MIGRATIONS) {
      if (done.has(m.version)) continue;
      for (const statement of m.sql) await tx.query(statement);
      await tx.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)', [
        m.version,
        m.name,
        new Date().toISOString(),
      ]);
      applied.push(m.version);
    }
    return applied;
  });
}
