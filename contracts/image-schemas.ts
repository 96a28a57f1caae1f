/**
 * The schema documents Glance serves at /v2/schemas/{image,images,member,members}: its
 * base image properties (glance/api/v2/images.py get_base_properties), the custom ones
 * its default etc/schema-image.json adds (`is_base: false`), and the member schema
 * (image_members.py), wrapped as glance/schema.py's raw() and minimal() do.
 *
 * Invariants: a document names exactly the attributes Kumo's views carry, with Glance's
 * types, patterns and lengths; the format enums are the formats Kumo accepts (Glance
 * takes them from its configuration); extra properties are strings
 * (`additionalProperties`), as Kumo stores them.
 */
import { CONTAINER_FORMATS, DISK_FORMATS, KEY_DELETION_POLICIES } from './compute.ts';

const UUID_PATTERN =
  '^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$';
const KEYS_DOC = 'https://docs.openstack.org/python-glanceclient/latest/cli/property-keys.html';
const nullableString = (description: string, maxLength: number, readOnly = false) => ({
  type: ['null', 'string'],
  ...(readOnly ? { readOnly: true } : {}),
  description,
  maxLength,
});
const readOnlyString = (description: string) => ({ type: 'string', readOnly: true, description });

const LOCATION_VALIDATION = {
  description:
    "Values to be used to populate the corresponding image properties. If the image status is not 'queued', values must exactly match those already contained in the image properties.",
  type: 'object',
  writeOnly: true,
  additionalProperties: false,
  properties: {
    checksum: { type: 'string', minLength: 32, maxLength: 32 },
    os_hash_algo: { type: 'string', maxLength: 64 },
    os_hash_value: { type: 'string', maxLength: 128 },
  },
  required: ['os_hash_algo', 'os_hash_value'],
};

/** Identity and access: id, name, status, visibility, protection, owner. */
function identityProperties() {
  return {
    id: { type: 'string', description: 'An identifier for the image', pattern: UUID_PATTERN },
    name: nullableString('Descriptive name for the image', 255),
    status: {
      type: 'string',
      readOnly: true,
      description: 'Status of the image',
      enum: ['queued', 'saving', 'active', 'killed', 'deleted', 'uploading', 'importing'].concat([
        'pending_delete',
        'deactivated',
      ]),
    },
    visibility: {
      type: 'string',
      description: 'Scope of image accessibility',
      enum: ['community', 'public', 'private', 'shared'],
    },
    protected: { type: 'boolean', description: 'If true, image will not be deletable.' },
    os_hidden: {
      type: 'boolean',
      description: 'If true, image will not appear in default image list response.',
    },
    owner: nullableString('Owner of the image', 255),
  };
}

/** The data: hashes, sizes, formats and the minimums to boot it. */
function dataProperties() {
  return {
    checksum: nullableString('md5 hash of image contents.', 32, true),
    os_hash_algo: nullableString('Algorithm to calculate the os_hash_value', 64, true),
    os_hash_value: nullableString(
      'Hexdigest of the image contents using the algorithm specified by the os_hash_algo',
      128,
      true,
    ),
    size: { type: ['null', 'integer'], readOnly: true, description: 'Size of image file in bytes' },
    virtual_size: {
      type: ['null', 'integer'],
      readOnly: true,
      description: 'Virtual size of image in bytes',
    },
    container_format: {
      type: ['null', 'string'],
      description: 'Format of the container',
      enum: [null, ...CONTAINER_FORMATS],
    },
    disk_format: {
      type: ['null', 'string'],
      description: 'Format of the disk',
      enum: [null, ...DISK_FORMATS],
    },
    min_ram: { type: 'integer', description: 'Amount of ram (in MB) required to boot image.' },
    min_disk: {
      type: 'integer',
      description: 'Amount of disk space (in GB) required to boot image.',
    },
  };
}

/** Times, tags, and where the image and its data are found. */
function placeProperties() {
  return {
    created_at: readOnlyString('Date and time of image registration'),
    updated_at: readOnlyString('Date and time of the last image modification'),
    tags: {
      type: 'array',
      description: 'List of strings related to the image',
      items: { type: 'string', maxLength: 255 },
    },
    direct_url: readOnlyString('URL to access the image file kept in external store'),
    self: readOnlyString('An image self url'),
    file: readOnlyString('An image file url'),
    stores: readOnlyString(
      'Store in which image data resides.  Only present when the operator has enabled multiple stores.  May be a comma-separated list of store identifiers.',
    ),
    schema: readOnlyString('An image schema url'),
    locations: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          url: { type: 'string', maxLength: 255 },
          metadata: { type: 'object' },
          validation_data: LOCATION_VALIDATION,
        },
        required: ['url', 'metadata'],
      },
      description: 'A set of URLs to access the image file kept in external store',
    },
  };
}

/** Glance's get_base_properties(), in three groups. */
const baseProperties = () => ({
  ...identityProperties(),
  ...dataProperties(),
  ...placeProperties(),
});

const imageRef = (what: string) => ({
  type: ['null', 'string'],
  pattern: UUID_PATTERN,
  description: `ID of image stored in Glance that should be used as the ${what} when booting an AMI-style image.`,
  is_base: false,
});
const customString = (description: string) => ({ description, type: 'string', is_base: false });

/** etc/schema-image.json, as Glance ships it. */
function customProperties() {
  return {
    kernel_id: imageRef('kernel'),
    ramdisk_id: imageRef('ramdisk'),
    instance_uuid: customString(
      'Metadata which can be used to record which instance this image is associated with. (Informational only, does not create an instance snapshot.)',
    ),
    architecture: customString(`Operating system architecture as specified in ${KEYS_DOC}`),
    os_distro: customString(
      `Common name of operating system distribution as specified in ${KEYS_DOC}`,
    ),
    os_version: customString('Operating system version as specified by the distributor.'),
    description: customString('A human-readable string describing this image.'),
    cinder_encryption_key_id: customString(
      'Identifier in the OpenStack Key Management Service for the encryption key for the Block Storage Service to use when mounting a volume created from this image',
    ),
    cinder_encryption_key_deletion_policy: {
      ...customString(
        "States the condition under which the Image Service will delete the object associated with the 'cinder_encryption_key_id' image property.  If this property is missing, the Image Service will take no action",
      ),
      enum: [...KEY_DELETION_POLICIES],
    },
  };
}

/** GET /v2/schemas/image: a PermissiveSchema's raw(). */
export function imageSchema() {
  return {
    name: 'image',
    properties: { ...baseProperties(), ...customProperties() },
    additionalProperties: { type: 'string' },
    links: [
      { rel: 'self', href: '{self}' },
      { rel: 'enclosure', href: '{file}' },
      { rel: 'describedby', href: '{schema}' },
    ],
  };
}

/** GET /v2/schemas/images: a CollectionSchema's raw(). */
export function imagesSchema() {
  return {
    name: 'images',
    properties: {
      images: { type: 'array', items: imageSchema() },
      first: { type: 'string' },
      next: { type: 'string' },
      schema: { type: 'string' },
    },
    links: [
      { rel: 'first', href: '{first}' },
      { rel: 'next', href: '{next}' },
      { rel: 'describedby', href: '{schema}' },
    ],
  };
}

/** GET /v2/schemas/member: a Schema's minimal(). */
export function memberSchema() {
  return {
    name: 'member',
    properties: {
      member_id: {
        type: 'string',
        description: 'An identifier for the image member (tenantId)',
      },
      image_id: {
        type: 'string',
        description: 'An identifier for the image',
        pattern: UUID_PATTERN,
      },
      created_at: { type: 'string', description: 'Date and time of image member creation' },
      updated_at: {
        type: 'string',
        description: 'Date and time of last modification of image member',
      },
      status: {
        type: 'string',
        description: 'The status of this image member',
        enum: ['pending', 'accepted', 'rejected'],
      },
      schema: { readOnly: true, type: 'string' },
    },
  };
}

/** GET /v2/schemas/members: a CollectionSchema's minimal(). */
export function membersSchema() {
  return {
    name: 'members',
    properties: {
      members: { type: 'array', items: memberSchema() },
      schema: { type: 'string' },
    },
    links: [{ rel: 'describedby', href: '{schema}' }],
  };
}
