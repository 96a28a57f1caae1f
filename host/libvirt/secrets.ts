/**
 * The secret procedures of `LibvirtClient` (virSecret*: define, set value, look up, list,
 * undefine), written the way remote_protocol.x declares remote_secret_*_args / _ret.
 * Only encoding here; the session does the calling.
 *
 * Invariant: a secret's value only ever travels to libvirtd (SECRET_SET_VALUE); there is
 * no procedure here that reads one back (libvirtd refuses that for private secrets anyway).
 */
import type { CallOptions } from '../session/session.ts';
import {
  RemoteProc as P,
  REMOTE_SECRET_LIST_MAX,
  REMOTE_SECRET_VALUE_MAX,
  REMOTE_STRING_MAX,
  readSecret,
  type Secret,
  uuidToBytes,
  VIR_UUID_BUFLEN,
  writeSecret,
} from './protocol.ts';
import type { ProcCall } from './types.ts';
import type { XdrReader } from './xdr.ts';

const none = (): undefined => undefined;

function readSecretList(r: XdrReader): Secret[] {
  const secrets = r.array(readSecret, REMOTE_SECRET_LIST_MAX);
  r.uint(); // ret: the count again
  return secrets;
}

export function secretProcedures(call: ProcCall) {
  return {
    secretDefineXml: (xml: string, flags = 0, o?: CallOptions) =>
      call(
        P.REMOTE_PROC_SECRET_DEFINE_XML,
        (w) => w.string(xml, REMOTE_STRING_MAX).uint(flags),
        readSecret,
        o,
      ),
    secretSetValue: (secret: Secret, value: Uint8Array, flags = 0, o?: CallOptions) =>
      call(
        P.REMOTE_PROC_SECRET_SET_VALUE,
        (w) => {
          writeSecret(w, secret);
          w.opaqueVar(value, REMOTE_SECRET_VALUE_MAX).uint(flags);
        },
        none,
        o,
      ),
    secretLookupByUuid: (uuid: string, o?: CallOptions) =>
      call(
        P.REMOTE_PROC_SECRET_LOOKUP_BY_UUID,
        (w) => w.opaqueFixed(uuidToBytes(uuid), VIR_UUID_BUFLEN),
        readSecret,
        o,
      ),
    secretGetXmlDesc: (secret: Secret, flags = 0, o?: CallOptions) =>
      call(
        P.REMOTE_PROC_SECRET_GET_XML_DESC,
        (w) => {
          writeSecret(w, secret);
          w.uint(flags);
        },
        (r) => r.string(REMOTE_STRING_MAX),
        o,
      ),
    secretUndefine: (secret: Secret, o?: CallOptions) =>
      call(P.REMOTE_PROC_SECRET_UNDEFINE, (w) => writeSecret(w, secret), none, o),
    /** remote_connect_list_all_secrets_args: need_results = 1, then the flags. */
    listAllSecrets: (flags = 0, o?: CallOptions) =>
      call(P.REMOTE_PROC_CONNECT_LIST_ALL_SECRETS, (w) => w.int(1).uint(flags), readSecretList, o),
  };
}
