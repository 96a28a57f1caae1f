"""Kumo's contract checker: validates recorded API answers against OpenStack's published
response schemas, all records of one test file in one process.

Schemas come from Debian packages wherever one ships them:
  - compute: python3-tempest (33), tempest/lib/api_schema/response/compute/v2_*, picked as
    tempest's service clients pick them (ServersClient/FlavorsClient.schema_versions_info
    for the microversion asked) and applied with tempest.lib.common.rest_client.RestClient.
    validate_response (status code, headers, body with additionalProperties false);
  - volume: python3-tempest (33), tempest/lib/api_schema/response/volume/*.py (Cinder v3
    at 3.0-3.3, before the v3_7+ schema directories), applied as for compute;
  - image: python3-glanceclient (4.1), glanceclient/v2/image_schema.py (_BASE_SCHEMA, the
    image entity) via python3-jsonschema; the list, member, version and error shapes,
    which no package ships, are in shapes.py, written from Glance's, Nova's and Neutron's
    source and api-ref.
Beside the schemas, every record's headers are checked as oslo.middleware's request-id
and Nova's microversion middleware set them (tempest reads them after every call).

Input (stdin): a JSON list of records {check, family, method, url, microversion, status,
headers, body}. Output (stdout): a JSON list of messages, one per problem, each naming the
record and the path in its body. Invariant: an unknown check name is itself a problem,
so a record never passes unchecked.
"""
import json
import re
import sys

import jsonschema
from glanceclient.v2 import image_schema
from tempest.lib.api_schema.response.compute.v2_1 import flavors as flavors21
from tempest.lib.api_schema.response.compute.v2_1 import servers as servers21
from tempest.lib.api_schema.response.compute.v2_1 import versions as versions21
from tempest.lib.common import api_version_request, rest_client
from tempest.lib.services.compute.flavors_client import FlavorsClient
from tempest.lib.services.compute.keypairs_client import KeyPairsClient
from tempest.lib.services.compute.servers_client import ServersClient
from tempest.lib.api_schema.response.volume import limits as vlimits
from tempest.lib.api_schema.response.volume import messages as vmessages
from tempest.lib.api_schema.response.volume import quotas as vquotas
from tempest.lib.api_schema.response.volume import snapshots as vsnapshots
from tempest.lib.api_schema.response.volume import versions as vversions
from tempest.lib.api_schema.response.volume import volume_types as vtypes
from tempest.lib.api_schema.response.volume import volumes as vvolumes

from shapes import (GLANCE_FAULT, GLANCE_VERSIONS, IMAGE, IMAGES, MEMBER, MEMBERS,
                    NEUTRON_FAULT, NEUTRON_VERSIONS, NOVA_FAULT, RESERVATION, SCHEMA_DOC)

REQ_ID = re.compile(r'^req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')

# check name -> (tempest's schema_versions_info or a fixed module, attribute), as
# tempest's service clients choose them (servers_client.py, flavors_client.py,
# keypairs_client.py, versions_client.py).
COMPUTE = {
    'versions.list_versions': (versions21, 'list_versions'),
    'versions.get_one_version': (versions21, 'get_one_version'),
    'flavors.list_flavors': (FlavorsClient, 'list_flavors'),
    'flavors.list_flavors_details': (FlavorsClient, 'list_flavors_details'),
    'flavors.show_flavor': (FlavorsClient, 'create_update_get_flavor_details'),
    'flavors.create_flavor': (FlavorsClient, 'create_update_get_flavor_details'),
    'flavors.delete_flavor': (flavors21, 'delete_flavor'),
    'servers.create_server': (servers21, 'create_server'),
    'servers.create_server_with_admin_pass': (servers21, 'create_server_with_admin_pass'),
    'servers.list_servers': (ServersClient, 'list_servers'),
    'servers.list_servers_detail': (ServersClient, 'list_servers_detail'),
    'servers.show_server': (ServersClient, 'get_server'),
    'servers.update_server': (ServersClient, 'update_server'),
    'servers.delete_server': (servers21, 'delete_server'),
    'servers.list_addresses': (servers21, 'list_addresses'),
    'servers.list_addresses_by_network': (servers21, 'list_addresses_by_network'),
    'servers.action': (servers21, 'server_actions_common_schema'),
    'servers.get_console_output': (servers21, 'get_console_output'),
    'servers.rebuild_server': (ServersClient, 'rebuild_server'),
    'servers.rebuild_server_with_admin_pass': (ServersClient, 'rebuild_server_with_admin_pass'),
    'servers.attach_volume': (ServersClient, 'attach_volume'),
    'servers.show_volume_attachment': (ServersClient, 'show_volume_attachment'),
    'servers.list_volume_attachments': (ServersClient, 'list_volume_attachments'),
    'servers.detach_volume': (ServersClient, 'detach_volume'),
    'keypairs.create_keypair': (KeyPairsClient, 'create_keypair'),
    'keypairs.list_keypairs': (KeyPairsClient, 'list_keypairs'),
    'keypairs.show_keypair': (KeyPairsClient, 'get_keypair'),
    'keypairs.delete_keypair': (KeyPairsClient, 'delete_keypair'),
}

# check name -> (tempest volume schema module, attribute) for Cinder v3 (3.0-3.3).
VOLUME = {
    'volume.versions': (vversions, 'list_versions'),
    'volume.version': (vversions, 'volume_api_version_details'),
    'volume.create': (vvolumes, 'create_volume'),
    'volume.show': (vvolumes, 'show_volume'),
    'volume.update': (vvolumes, 'update_volume'),
    'volume.list': (vvolumes, 'list_volumes_no_detail'),
    'volume.list_detail': (vvolumes, 'list_volumes_with_detail'),
    'volume.delete': (vvolumes, 'delete_volume'),
    'volume.extend': (vvolumes, 'extend_volume'),
    'volume.reset_status': (vvolumes, 'reset_volume_status'),
    'volume.force_delete': (vvolumes, 'force_delete_volume'),
    'snapshot.create': (vsnapshots, 'create_snapshot'),
    'snapshot.show': (vsnapshots, 'show_snapshot'),
    'snapshot.update': (vsnapshots, 'update_snapshot'),
    'snapshot.list': (vsnapshots, 'list_snapshots_no_detail'),
    'snapshot.list_detail': (vsnapshots, 'list_snapshots_with_detail'),
    'snapshot.delete': (vsnapshots, 'delete_snapshot'),
    'type.list': (vtypes, 'list_volume_types'),
    'type.show': (vtypes, 'show_volume_type'),
    'quota.show': (vquotas, 'show_quota_set'),
    'quota.usage': (vquotas, 'show_quota_set_usage'),
    'quota.update': (vquotas, 'update_quota_set'),
    'limits.show': (vlimits, 'show_limits'),
    'message.list': (vmessages, 'list_messages'),
    'message.show': (vmessages, 'show_message'),
    'message.delete': (vmessages, 'delete_message'),
}

COMPUTE_LOCAL = {'servers.create_multiple_reservation': RESERVATION}

# check name -> (status, body schema or None for no body)
IMAGE_CHECKS = {
    'image.show': (200, IMAGE), 'image.create': (201, IMAGE), 'image.update': (200, IMAGE),
    'image.list': (200, IMAGES), 'image.delete': (204, None),
    'image.deactivate': (204, None), 'image.reactivate': (204, None),
    'image.member.create': (200, MEMBER), 'image.member.show': (200, MEMBER),
    'image.member.update': (200, MEMBER), 'image.member.list': (200, MEMBERS),
    'image.member.delete': (204, None),
    'image.schema': (200, SCHEMA_DOC), 'image.upload': (204, None),
    'image.versions.root': (300, GLANCE_VERSIONS), 'image.versions': (200, GLANCE_VERSIONS),
}
NETWORK_CHECKS = {'network.versions': (200, NEUTRON_VERSIONS)}
# Answers checked for their headers only (Neutron's bodies are another issue's contract).
HEADERS_ONLY = {'network.any'}
# Cinder's faults are webob's, keyed as Nova's (cinder/api/openstack/wsgi.py Fault).
FAULTS = {'compute': NOVA_FAULT, 'image': GLANCE_FAULT, 'networking': NEUTRON_FAULT,
          'volume': NOVA_FAULT}

VALIDATOR = rest_client.JSONSCHEMA_VALIDATOR
FORMATS = rest_client.FORMAT_CHECKER


class Resp(dict):
    """The response as tempest's validate_response sees it: headers plus `status`."""

    def __init__(self, status, headers):
        super().__init__({k.lower(): v for k, v in headers.items()})
        self.status = status


def where(error):
    return 'body' + ''.join('[%s]' % json.dumps(p) for p in error.absolute_path)


def body_errors(body, schema):
    return ['%s: %s' % (where(e), e.message)
            for e in sorted(VALIDATOR(schema, format_checker=FORMATS).iter_errors(body),
                            key=lambda e: list(map(str, e.absolute_path)))]


def pick(source, attr, microversion):
    """The schema tempest's client would apply at `microversion` (get_schema's rule)."""
    if not isinstance(source, type):
        return getattr(source, attr)
    version = api_version_request.APIVersionRequest(microversion)
    for item in source.schema_versions_info:
        if version.is_null() and item['min'] is None:
            return getattr(item['schema'], attr)
        low = api_version_request.APIVersionRequest(item['min'])
        high = api_version_request.APIVersionRequest(item['max'])
        if not version.is_null() and version.matches(low, high):
            return getattr(item['schema'], attr)
    raise LookupError('no tempest schema for %s at %s' % (attr, microversion))


def tempest_check(schema, rec):
    problems = []
    if rec['status'] not in schema['status_code']:
        return ['status %s, the schema expects %s' % (rec['status'], schema['status_code'])]
    try:
        rest_client.RestClient.validate_response(schema, Resp(rec['status'], rec['headers']),
                                                 rec['body'])
    except Exception as ex:  # tempest's own verdict; the details follow
        detail = body_errors(rec['body'], schema['response_body']) \
            if schema.get('response_body') else []
        problems += detail or [str(ex).splitlines()[0]]
    return problems


def plain_check(status, schema, rec):
    if rec['status'] != status:
        return ['status %s, expected %s' % (rec['status'], status)]
    if schema is None:
        return [] if rec['body'] in (None, '') else ['a body where none is expected']
    return body_errors(rec['body'], schema)


def image_schema_problems(doc):
    """The image schema Kumo serves must describe every property glanceclient knows."""
    served = doc.get('properties', {}) if isinstance(doc, dict) else {}
    problems = ['body["properties"]: no %r, which glanceclient\'s image schema has' % k
                for k in sorted(set(image_schema._BASE_SCHEMA['properties']) - set(served))]
    try:
        jsonschema.Draft4Validator.check_schema(doc)
    except jsonschema.SchemaError as ex:
        problems.append('body: not a JSON schema (%s)' % ex.message)
    return problems


def schema_problems(rec):
    check = rec['check']
    if check.endswith('.error'):
        if rec['status'] < 400:
            return ['status %s for an expected error' % rec['status']]
        return body_errors(rec['body'], FAULTS[rec['family']])
    if check in COMPUTE:
        source, attr = COMPUTE[check]
        return tempest_check(pick(source, attr, rec.get('microversion')), rec)
    if check in VOLUME:
        return tempest_check(getattr(*VOLUME[check]), rec)
    if check in COMPUTE_LOCAL:
        return tempest_check(COMPUTE_LOCAL[check], rec)
    if check == 'image.schema.image':
        return plain_check(200, SCHEMA_DOC, rec) or image_schema_problems(rec['body'])
    if check in IMAGE_CHECKS:
        return plain_check(*IMAGE_CHECKS[check], rec)
    if check in HEADERS_ONLY:
        return [] if rec['status'] < 400 else ['status %s' % rec['status']]
    if check in NETWORK_CHECKS:
        return plain_check(*NETWORK_CHECKS[check], rec)
    return ['unknown check %r' % check]


def error_request_id(rec):
    body = rec['body'] if isinstance(rec['body'], dict) else {}
    if rec['family'] == 'image':
        return body.get('request_id')
    inner = next(iter(body.values()), None) if body else None
    return inner.get('request_id') if isinstance(inner, dict) else None


def header_problems(rec):
    h = {k.lower(): v for k, v in rec['headers'].items()}
    rid = h.get('x-openstack-request-id')
    problems = []
    if not isinstance(rid, str) or not REQ_ID.match(rid):
        problems.append('header x-openstack-request-id is %r, not req-<uuid>' % rid)
    if rec['family'] == 'compute' and h.get('x-compute-request-id') != rid:
        problems.append('header x-compute-request-id is %r, not the request id %r'
                        % (h.get('x-compute-request-id'), rid))
    if rec['status'] >= 400 and error_request_id(rec) != rid:
        problems.append('the error body carries request_id %r, not %r'
                        % (error_request_id(rec), rid))
    asked = rec.get('microversion')
    if rec['family'] == 'compute' and asked and asked != 'latest' and rec['status'] != 406:
        if h.get('x-openstack-nova-api-version') != asked:
            problems.append('header x-openstack-nova-api-version is %r, asked %s'
                            % (h.get('x-openstack-nova-api-version'), asked))
        if h.get('openstack-api-version') != 'compute ' + asked:
            problems.append('header openstack-api-version is %r, asked compute %s'
                            % (h.get('openstack-api-version'), asked))
        if 'openstack-api-version' not in h.get('vary', '').lower():
            problems.append('header vary %r does not name OpenStack-API-Version'
                            % h.get('vary'))
    return problems + volume_header_problems(rec, h)


def volume_header_problems(rec, h):
    """Cinder echoes the negotiated version on every answer under /v3 (3.0 when none asked)."""
    if rec['family'] != 'volume' or not re.search(r'/v3/[^/?]+/', rec['url']) \
            or rec['status'] == 406:
        return []
    asked = (rec.get('microversion') or '3.0').replace('latest', '3.3')
    problems = []
    if h.get('openstack-api-version') != 'volume ' + asked:
        problems.append('header openstack-api-version is %r, asked volume %s'
                        % (h.get('openstack-api-version'), asked))
    if 'openstack-api-version' not in h.get('vary', '').lower():
        problems.append('header vary %r does not name OpenStack-API-Version' % h.get('vary'))
    return problems


def label(i, rec):
    version = ' @%s' % rec['microversion'] if rec.get('microversion') else ''
    return '#%d %s %s%s [%s] -> %s' % (i, rec['method'], rec['url'], version, rec['check'],
                                      rec['status'])


SERVED_CHECKED = {'image.show', 'image.create', 'image.update'}


def served_problems(rec, served):
    """An image body must also validate against the image schema Kumo itself serves
    (glanceclient validates what it sends and shows against that document)."""
    if rec['check'] not in SERVED_CHECKED or rec['status'] >= 400:
        return []
    if served is None:
        return ['no image.schema.image answer was recorded to check this body against']
    return ['against the served /v2/schemas/image: %s' % p
            for p in body_errors(rec['body'], served)]


def main():
    records = json.load(sys.stdin)
    served = next((r['body'] for r in records
                   if r['check'] == 'image.schema.image' and r['status'] == 200), None)
    out = []
    for i, rec in enumerate(records):
        out += ['%s: %s' % (label(i, rec), p)
                for p in schema_problems(rec) + header_problems(rec)
                + served_problems(rec, served)]
    json.dump(out, sys.stdout)


if __name__ == '__main__':
    main()
