/**
 * Glance's schema documents: GET /schemas/image, /schemas/images, /schemas/member and
 * /schemas/members (under /v2 and the root, as the image routes).
 *
 * Invariant: the documents are the ones contracts/image-schemas.ts builds, served as they
 * are; glanceclient reads them to know which attributes are core and which are extra.
 */
import type { FastifyInstance } from 'fastify';
import {
  imageSchema,
  imagesSchema,
  memberSchema,
  membersSchema,
} from '../../contracts/image-schemas.ts';

const DOCUMENTS = {
  image: imageSchema,
  images: imagesSchema,
  member: memberSchema,
  members: membersSchema,
};

export function imageSchemaRoutes(scope: FastifyInstance) {
  for (const [name, document] of Object.entries(DOCUMENTS))
    scope.get(`/schemas/${name}`, { config: { allowService: true } }, async () => document());
}
