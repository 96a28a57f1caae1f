/**
 * Compute vocabulary shared by kumo-api, the CLI and the compute agent: Nova v2.1 flavors
 * and Glance v2 images (request schemas, the objects the API returns, the error shape).
 *
 * Invariants: every request attribute passes one of these schemas before anything else
 * looks at it; names never carry control characters; image extra properties are bounded
 * in number, key and value length; errors name the field at fault; an attribute is core
 * only as an own key of IMAGE_CORE (a name from Object.prototype is a plain property).
 */

import { glanceUuid } from './images.ts';
import { boolLike, intLike } from './network.ts';
import {
  arr,
  bool,
  isPlainObject,
  nullable,
  obj,
  oneOf,
  optional,
  projectId,
  type Schema,
  str,
  uuid,
  ValidationError,
} from './schema.ts';
import { novaName } from './servers.ts';

const fail = (path: string, reason: string): never => {
  throw new ValidationError(path, reason);
};

/* ------------------------------------------------------------------ errors */

/** Nova's (and here also Glance's) error body: `{"itemNotFound": {code, message}}`. */
export const NOVA_ERROR_KEYS: Record<number, string> = {
  400: 'badRequest',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'itemNotFound',
  405: 'badMethod',
  409: 'conflictingRequest',
  413: 'overLimit',
  415: 'badMediaType',
  429: 'overLimit',
  501: 'notImplemented',
  503: 'serviceUnavailable',
};

export function novaError(status: number, message: string) {
  return { [NOVA_ERROR_KEYS[status] ?? 'computeFault']: { code: status, message } };
}

/* ----------------------------------------------------------------- flavors */

/** Nova's flavor id pattern: letters, digits, `. _ -` and inner spaces. */
export const FLAVOR_ID = /^(?! )[a-zA-Z0-9. _-]{1,255}(?<! )$/;
const MAX_INT32 = 2 ** 31 - 1;

/** Nova sends `swap` as "" or an integer; only no swap is supported. */
const zeroSwap = (): Schema<0> => ({
  kind: 'integer',
  parse(value, path = '') {
    if (value === '' || value === 0 || value === '0') return 0;
    return fail(path, 'is not supported yet (only 0 or "")');
  },
});
const zeroOnly = (): Schema<0> => ({
  kind: 'integer',
  parse(value, path = '') {
    if (intLike({ min: 0, max: MAX_INT32 }).parse(value, path) !== 0)
      fail(path, 'is not supported yet (only 0)');
    return 0;
  },
});
const rxtxOne = (): Schema<1> => ({
  kind: 'number',
  parse(value, path = '') {
    const n = typeof value === 'string' ? Number(value) : value;
    if (n !== 1) fail(path, 'is not supported yet (only 1.0)');
    return 1;
  },
});

/** Nova's flavor name is its `name` rule, as a server's: printable BMP characters (no
 * category C, Zl or Zp), no outer whitespace; a domain's metadata carries it. */
const flavorName = novaName;

export const FlavorCreate = obj({
  flavor: obj({
    name: flavorName(),
    id: optional(
      nullable(
        str({ pattern: FLAVOR_ID, patternName: 'a flavor id (letters, digits, . _ - and spaces)' }),
      ),
    ),
    vcpus: intLike({ min: 1, max: MAX_INT32 }),
    ram: intLike({ min: 1, max: MAX_INT32 }),
    disk: intLike({ min: 0, max: MAX_INT32 }),
    'OS-FLV-EXT-DATA:ephemeral': optional(zeroOnly()),
    swap: optional(zeroSwap()),
    rxtx_factor: optional(rxtxOne()),
    'os-flavor-access:is_public': optional(boolLike()),
    description: optional(nullable(str({ max: 65535 }))),
  }),
});
export type FlavorCreate = ReturnType<typeof FlavorCreate.parse>['flavor'];

/** POST /flavors/{id}/action: addTenantAccess / removeTenantAccess (Nova's schemas). */
export const AddTenantAccess = obj({ addTenantAccess: obj({ tenant: projectId() }) });
export const RemoveTenantAccess = obj({ removeTenantAccess: obj({ tenant: projectId() }) });

export interface Link {
  rel: 'self' | 'bookmark';
  href: string;
}

export interface Flavor {
  id: string;
  name: string;
  vcpus: number;
  ram: number;
  disk: number;
  swap: '';
  rxtx_factor: 1.0;
  'os-flavor-access:is_public': boolean;
  'OS-FLV-DISABLED:disabled': false;
  'OS-FLV-EXT-DATA:ephemeral': 0;
  links: Link[];
}

/* ------------------------------------------------------------------ images */

export const DISK_FORMATS = ['raw', 'qcow2', 'aki', 'ari', 'ami'] as const;
export const CONTAINER_FORMATS = ['bare', 'aki', 'ari', 'ami'] as const;
export const VISIBILITIES = ['public', 'private', 'shared', 'community'] as const;
export const IMAGE_STATUSES = [
  'queued',
  'saving',
  'active',
  'killed',
  'deleted',
  'deactivated',
] as const;
export type ImageStatus = (typeof IMAGE_STATUSES)[number];
export const MAX_IMAGE_PROPERTIES = 128;
export const MAX_IMAGE_TAGS = 128;

/** Attributes the server sets; a client naming them is refused (Glance: 403). `owner`
 * is set by admins only (image-query.ts). */
export const IMAGE_READ_ONLY = [
  'status',
  'checksum',
  'os_hash_algo',
  'os_hash_value',
  'size',
  'virtual_size',
  'created_at',
  'updated_at',
  'self',
  'file',
  'schema',
  'direct_url',
  'locations',
  'stores',
] as const;

const imageName = () => nullable(str({ max: 255 }));
const nonNegative = () => intLike({ min: 0, max: MAX_INT32 });
const tags = () => arr(str({ min: 1, max: 255 }), { max: MAX_IMAGE_TAGS });

/** Core (non-property) attributes a client may set, with their schemas. */
export const IMAGE_CORE = {
  name: imageName(),
  disk_format: nullable(oneOf(DISK_FORMATS)),
  container_format: nullable(oneOf(CONTAINER_FORMATS)),
  visibility: oneOf(VISIBILITIES),
  min_disk: nonNegative(),
  min_ram: nonNegative(),
  protected: bool(),
  os_hidden: bool(),
  tags: tags(),
  owner: str({ min: 1, max: 255 }),
} as const satisfies Record<string, Schema<unknown>>;
export type ImageCoreKey = keyof typeof IMAGE_CORE;

export const PROPERTY_KEY = /^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,254}$/;
const propertyKey = (key: string, path: string) => {
  if (!PROPERTY_KEY.test(key))
    fail(path, 'is not a valid property name (1-255 letters, digits, _ . : -)');
  if (key.startsWith('os_glance')) fail(path, 'is reserved (os_glance prefix)');
  if (key === '__proto__') fail(path, 'is not a valid property name (__proto__)');
};
export const propertyValue = () => str({ max: 255 });
/** Properties whose value names another image (Nova boots with them): checked for form
 * only, as Glance's schema does; Nova checks that they exist when it boots. */
export const IMAGE_REF_PROPERTIES = ['kernel_id', 'ramdisk_id'] as const;

/** The one enum among the extra properties of Glance's schema-image.json. */
export const KEY_DELETION_POLICIES = ['on_image_deletion', 'do_not_delete'] as const;

export function parseProperty(key: string, value: unknown): string {
  propertyKey(key, key);
  const v = propertyValue().parse(value, key);
  if ((IMAGE_REF_PROPERTIES as readonly string[]).includes(key)) glanceUuid().parse(v, key);
  if (key === 'cinder_encryption_key_deletion_policy') oneOf(KEY_DELETION_POLICIES).parse(v, key);
  return v;
}

export interface ImageCreate {
  id?: string;
  core: Partial<{ [K in ImageCoreKey]: ReturnType<(typeof IMAGE_CORE)[K]['parse']> }>;
  properties: Record<string, string>;
}

export class ReadOnlyAttribute extends Error {
  readonly attribute: string;
  constructor(attribute: string) {
    super(`Attribute '${attribute}' is read-only.`);
    this.attribute = attribute;
    this.name = 'ReadOnlyAttribute';
  }
}

/** Glance's flat create body: known attributes, anything else is an extra property. */
export const ImageCreate: Schema<ImageCreate> = {
  kind: 'object',
  parse(value, path = '') {
    if (!isPlainObject(value)) return fail(path, 'must be an object');
    const out: ImageCreate = { core: {}, properties: {} };
    let props = 0;
    for (const [key, v] of Object.entries(value)) {
      if ((IMAGE_READ_ONLY as readonly string[]).includes(key)) throw new ReadOnlyAttribute(key);
      if (key === 'id') {
        if (v !== null && v !== undefined) out.id = uuid().parse(v, 'id');
      } else if (Object.hasOwn(IMAGE_CORE, key)) {
        const schema = IMAGE_CORE[key as ImageCoreKey] as Schema<unknown>;
        (out.core as Record<string, unknown>)[key] = schema.parse(v, key);
      } else if (v !== null) {
        if (++props > MAX_IMAGE_PROPERTIES)
          fail('properties', `must be at most ${MAX_IMAGE_PROPERTIES} extra properties`);
        out.properties[key] = parseProperty(key, v);
      }
    }
    return out;
  },
};

export const PatchOp = obj({
  op: oneOf(['add', 'replace', 'remove'] as const),
  path: str({ min: 2, max: 300, pattern: /^\/[^/]+$/, patternName: 'a path like /name' }),
  value: optional({
    kind: 'any',
    parse: (v: unknown) => v,
  } as Schema<unknown>),
});
export type PatchOp = ReturnType<typeof PatchOp.parse>;
export const ImagePatch = arr(PatchOp, { max: 256 });

/** `/a~1b` → `a/b` (RFC 6901 escapes). */
export const patchKey = (path: string): string =>
  path.slice(1).replaceAll('~1', '/').replaceAll('~0', '~');

export interface ImageCore {
  id: string;
  name: string | null;
  status: ImageStatus;
  visibility: (typeof VISIBILITIES)[number];
  protected: boolean;
  os_hidden: boolean;
  checksum: string | null;
  os_hash_algo: string | null;
  os_hash_value: string | null;
  size: number | null;
  virtual_size: number | null;
  min_disk: number;
  min_ram: number;
  disk_format: (typeof DISK_FORMATS)[number] | null;
  container_format: (typeof CONTAINER_FORMATS)[number] | null;
  owner: string;
  created_at: string;
  updated_at: string;
  tags: string[];
}

/** Glance's representation: core attributes, extra properties flat beside them, links. */
export type Image = ImageCore & {
  self: string;
  file: string;
  schema: string;
  [property: string]: unknown;
};
