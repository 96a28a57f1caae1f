"""One openstacksdk call against kumo-api, for test/fullstack/openstack-clients.test.ts.

Debian's python3-openstacksdk (0.101) with admin_token auth and an endpoint override per
service on kumo-api's service roots: compute <url>/compute/v2.1, image <url>/image,
network <url>/networking, so the SDK discovers versions and microversions there itself.

Usage: openstack_sdk.py <url> <token> <operation> <json arguments>; prints the result as
JSON on stdout. Invariant: each operation is the SDK's own proxy call, nothing hand-made.
"""
import json
import sys

import openstack.connection


def connect(url, token):
    return openstack.connection.Connection(
        auth_type='admin_token',
        auth={'endpoint': url, 'token': token},
        compute_endpoint_override=url + '/compute/v2.1',
        image_endpoint_override=url + '/image',
        network_endpoint_override=url + '/networking',
    )


def server_view(s):
    return {'id': s.id, 'name': s.name, 'status': s.status, 'is_locked': s.is_locked,
            'host_status': s.host_status, 'microversion': s.microversion,
            'image': (s.image or {}).get('id'), 'addresses': s.addresses}


def create_servers(conn, a):
    s = conn.compute.create_server(name=a['name'], image_id=a['image'], flavor_id=a['flavor'],
                                   networks=[{'uuid': a['network']}],
                                   min_count=a['min'], max_count=a['max'])
    return {'id': s.id}


def list_servers(conn, a):
    query = {k: v for k, v in (('ipv4_address', a.get('ip')), ('name', a.get('name'))) if v}
    return sorted(s.name for s in conn.compute.servers(**query))


OPERATIONS = {
    'create_servers': create_servers,
    'list_servers': list_servers,
    'show_server': lambda conn, a: server_view(conn.compute.get_server(a['id'])),
    'rebuild_server': lambda conn, a: server_view(conn.compute.rebuild_server(
        a['id'], image=a['image'], admin_password=a['password'])),
    'lock_server': lambda conn, a: conn.compute.lock_server(a['id']),
    'unlock_server': lambda conn, a: conn.compute.unlock_server(a['id']),
    'console_output': lambda conn, a: conn.compute.get_server_console_output(
        a['id'], length=a['lines'])['output'],
    'deactivate_image': lambda conn, a: conn.image.deactivate_image(a['image']),
    'reactivate_image': lambda conn, a: conn.image.reactivate_image(a['image']),
    'show_image': lambda conn, a: {'status': conn.image.get_image(a['image']).status},
    'add_member': lambda conn, a: {
        k: getattr(m, k) for k in ('member_id', 'image_id', 'status')
    } if (m := conn.image.add_member(a['image'], member=a['member'])) else None,
}


def main():
    url, token, operation, args = sys.argv[1:5]
    conn = connect(url, token)
    json.dump(OPERATIONS[operation](conn, json.loads(args)), sys.stdout)


if __name__ == '__main__':
    main()
