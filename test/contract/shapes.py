"""The response shapes no installed package ships, for check.py: Nova's fault body and
multi-create answer, Glance's error, image, list, member, schema-document and version
shapes, Neutron's error and versions. Each is written from the service's source or
api-ref, named beside it, with additionalProperties false wherever the service's own
views are closed; the image entity itself is glanceclient's schema (python3-glanceclient
4.1, glanceclient/v2/image_schema.py), made strict about the keys Glance always writes.
"""
import copy

from glanceclient.v2 import image_schema

# Nova's multi-create with return_reservation_id (nova/api/openstack/compute/servers.py).
RESERVATION = {
    'status_code': [202],
    'response_body': {
        'type': 'object',
        'properties': {'reservation_id': {'type': 'string'}},
        'required': ['reservation_id'],
        'additionalProperties': False,
    },
}

# Nova's fault body (nova/api/openstack/wsgi.py Fault): one key naming the fault.
NOVA_FAULT_KEYS = ['badRequest', 'unauthorized', 'forbidden', 'itemNotFound',
                   'badMethod', 'HTTPNotAcceptable', 'conflictingRequest',
                   'overLimit', 'badMediaType', 'computeFault', 'notImplemented',
                   'serviceUnavailable']
NOVA_FAULT = {
    'type': 'object', 'minProperties': 1, 'maxProperties': 1,
    'patternProperties': {'^(%s)$' % '|'.join(NOVA_FAULT_KEYS): {
        'type': 'object',
        'properties': {'code': {'type': 'integer'}, 'message': {'type': 'string'},
                       'request_id': {'type': 'string'}},
        'required': ['code', 'message'],
        'additionalProperties': False}},
    'additionalProperties': False,
}
# Glance's webob JSON error (glance/common/wsgi.py, webob's json_formatter).
GLANCE_FAULT = {
    'type': 'object',
    'properties': {'message': {'type': 'string'}, 'code': {'type': 'string'},
                   'title': {'type': 'string'}, 'request_id': {'type': 'string'}},
    'required': ['message', 'code', 'title'],
    'additionalProperties': False,
}
NEUTRON_FAULT = {
    'type': 'object',
    'properties': {'NeutronError': {
        'type': 'object',
        'properties': {'type': {'type': 'string'}, 'message': {'type': 'string'},
                       'detail': {'type': 'string'}, 'request_id': {'type': 'string'}},
        'required': ['type', 'message', 'detail'],
        'additionalProperties': False}},
    'required': ['NeutronError'],
    'additionalProperties': False,
}

UUID = '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
# Every key glance/api/v2/images.py ResponseSerializer._format_image always writes.
IMAGE_ALWAYS = ['id', 'name', 'status', 'visibility', 'protected', 'os_hidden',
                'checksum', 'os_hash_algo', 'os_hash_value', 'owner', 'size',
                'virtual_size', 'min_ram', 'min_disk', 'disk_format',
                'container_format', 'created_at', 'updated_at', 'tags', 'self',
                'file', 'schema']
IMAGE = copy.deepcopy(image_schema._BASE_SCHEMA)
IMAGE.pop('links', None)
IMAGE['type'] = 'object'
IMAGE['required'] = IMAGE_ALWAYS
# glanceclient 4.1's offline copy caps os_hash_value at 32 characters; Glance's own schema
# (glance/api/v2/images.py get_base_properties) says 128, a sha512 hex digest.
IMAGE['properties']['os_hash_value']['maxLength'] = 128
IMAGES = {
    'type': 'object',
    'properties': {'images': {'type': 'array', 'items': IMAGE},
                   'first': {'type': 'string', 'pattern': '^/v2/images'},
                   'next': {'type': 'string', 'pattern': '^/v2/images'},
                   'schema': {'enum': ['/v2/schemas/images']}},
    'required': ['images', 'first', 'schema'],
    'additionalProperties': False,
}
MEMBER = {
    'type': 'object',
    'properties': {'created_at': {'type': 'string', 'format': 'date-time'},
                   'updated_at': {'type': 'string', 'format': 'date-time'},
                   'image_id': {'type': 'string', 'pattern': UUID},
                   'member_id': {'type': 'string'},
                   'schema': {'enum': ['/v2/schemas/member']},
                   'status': {'enum': ['pending', 'accepted', 'rejected']}},
    'required': ['created_at', 'updated_at', 'image_id', 'member_id', 'schema', 'status'],
    'additionalProperties': False,
}
MEMBERS = {
    'type': 'object',
    'properties': {'members': {'type': 'array', 'items': MEMBER},
                   'schema': {'enum': ['/v2/schemas/members']}},
    'required': ['members', 'schema'],
    'additionalProperties': False,
}
LINK = {'type': 'object',
        'properties': {'href': {'type': 'string', 'format': 'uri'}, 'rel': {'type': 'string'}},
        'required': ['href', 'rel'], 'additionalProperties': False}
GLANCE_VERSION = {
    'type': 'object',
    'properties': {'id': {'type': 'string', 'pattern': r'^v2\.\d+$'},
                   'status': {'enum': ['CURRENT', 'SUPPORTED', 'DEPRECATED', 'EXPERIMENTAL']},
                   'links': {'type': 'array', 'items': LINK, 'minItems': 1}},
    'required': ['id', 'status', 'links'],
    'additionalProperties': False,
}
GLANCE_VERSIONS = {'type': 'object',
                   'properties': {'versions': {'type': 'array', 'items': GLANCE_VERSION,
                                               'minItems': 1}},
                   'required': ['versions'], 'additionalProperties': False}
# A JSON schema document as Glance serves one (glance/schema.py Schema.raw()).
SCHEMA_DOC = {'type': 'object',
              'properties': {'name': {'type': 'string'}, 'properties': {'type': 'object'},
                             'additionalProperties': {}, 'links': {'type': 'array'},
                             'required': {'type': 'array'}, 'definitions': {'type': 'object'}},
              'required': ['name', 'properties']}
NEUTRON_VERSIONS = {
    'type': 'object',
    'properties': {'versions': {'type': 'array', 'minItems': 1, 'items': {
        'type': 'object',
        'properties': {'id': {'enum': ['v2.0']}, 'status': {'enum': ['CURRENT']},
                       'links': {'type': 'array', 'items': LINK, 'minItems': 1}},
        'required': ['id', 'status', 'links'], 'additionalProperties': False}}},
    'required': ['versions'], 'additionalProperties': False,
}
