/**
 * XDR (RFC 4506) encoder and decoder: the subset libvirt's remote protocol uses. Pure, no
 * I/O, no dependency.
 *
 * Invariants:
 * - Every item is big-endian and occupies a multiple of 4 bytes; strings and opaque data
 *   are padded with zero bytes to the next multiple of 4 (and the reader skips the padding
 *   without checking it, as libvirt's rpcgen code does).
 * - `hyper` / `unsigned hyper` are read as `bigint` (64-bit values such as CPU time in ns
 *   exceed 2^53); `hyperNumber()` reads them as a `number` and throws when unsafe.
 * - The reader never reads past the end of its buffer and never allocates more than the
 *   remaining input: every length is checked first, so a hostile length cannot blow up
 *   memory. Violations throw `XdrError`.
 * - Strings are UTF-8 on the wire; the length prefix counts bytes, not characters.
 */

export class XdrError extends Error {
  override name = 'XdrError';
}

const INT_MIN = -0x8000_0000;
const INT_MAX = 0x7fff_ffff;
const UINT_MAX = 0xffff_ffff;
const HYPER_MIN = -(1n << 63n);
const HYPER_MAX = (1n << 63n) - 1n;
const UHYPER_MAX = (1n << 64n) - 1n;

const pad4 = (n: number): number => (4 - (n % 4)) % 4;

function checkInteger(v: number, min: number, max: number, what: string): void {
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new XdrError(`${what} out of range: ${v}`);
  }
}

function toBigInt(v: bigint | number, what: string): bigint {
  if (typeof v === 'bigint') return v;
  if (!Number.isSafeInteger(v)) throw new XdrError(`${what} must be a safe integer: ${v}`);
  return BigInt(v);
}

/** Appends XDR items to a growing buffer; `finish()` returns the bytes written. */
export class XdrWriter {
  private buf: Buffer;
  private len = 0;

  constructor(initialSize = 256) {
    this.buf = Buffer.alloc(Math.max(16, initialSize));
  }

  private reserve(n: number): number {
    const need = this.len + n;
    if (need > this.buf.length) {
      let size = this.buf.length * 2;
      while (size < need) size *= 2;
      const next = Buffer.alloc(size);
      this.buf.copy(next, 0, 0, this.len);
      this.buf = next;
    }
    const at = this.len;
    this.len = need;
    return at;
  }

  int(v: number): this {
    checkInteger(v, INT_MIN, INT_MAX, 'int');
    const at = this.reserve(4); // before reading this.buf: reserve may replace it
    this.buf.writeInt32BE(v, at);
    return this;
  }

  uint(v: number): this {
    checkInteger(v, 0, UINT_MAX, 'unsigned int');
    const at = this.reserve(4);
    this.buf.writeUInt32BE(v, at);
    return this;
  }

  hyper(v: bigint | number): this {
    const b = toBigInt(v, 'hyper');
    if (b < HYPER_MIN || b > HYPER_MAX) throw new XdrError(`hyper out of range: ${b}`);
    const at = this.reserve(8);
    this.buf.writeBigInt64BE(b, at);
    return this;
  }

  uhyper(v: bigint | number): this {
    const b = toBigInt(v, 'unsigned hyper');
    if (b < 0n || b > UHYPER_MAX) throw new XdrError(`unsigned hyper out of range: ${b}`);
    const at = this.reserve(8);
    this.buf.writeBigUInt64BE(b, at);
    return this;
  }

  bool(v: boolean): this {
    return this.int(v ? 1 : 0);
  }

  /** Fixed-length opaque: exactly `length` bytes, padded. */
  opaqueFixed(bytes: Uint8Array, length: number): this {
    if (bytes.length !== length) {
      throw new XdrError(`opaque[${length}] got ${bytes.length} bytes`);
    }
    return this.raw(bytes);
  }

  /** Variable-length opaque: length prefix, bytes, padding. */
  opaqueVar(bytes: Uint8Array, max = UINT_MAX): this {
    if (bytes.length > max) throw new XdrError(`opaque<${max}> got ${bytes.length} bytes`);
    this.uint(bytes.length);
    return this.raw(bytes);
  }

  string(s: string, max = UINT_MAX): this {
    const bytes = Buffer.from(s, 'utf8');
    if (bytes.length > max) throw new XdrError(`string<${max}> got ${bytes.length} bytes`);
    this.uint(bytes.length);
    return this.raw(bytes);
  }

  /** Optional data (`T *x`): a bool "present" followed by the value when present. */
  optional<T>(v: T | null | undefined, write: (w: this, v: T) => void): this {
    if (v === null || v === undefined) return this.bool(false);
    this.bool(true);
    write(this, v);
    return this;
  }

  /** Variable-length array (`T x<max>`): count, then each element. */
  array<T>(items: readonly T[], write: (w: this, v: T) => void, max = UINT_MAX): this {
    if (items.length > max) throw new XdrError(`array<${max}> got ${items.length} items`);
    this.uint(items.length);
    for (const item of items) write(this, item);
    return this;
  }

  /** Fixed-length array (`T x[n]`): each element, no count. */
  fixedArray<T>(items: readonly T[], length: number, write: (w: this, v: T) => void): this {
    if (items.length !== length) throw new XdrError(`array[${length}] got ${items.length}`);
    for (const item of items) write(this, item);
    return this;
  }

  private raw(bytes: Uint8Array): this {
    const at = this.reserve(bytes.length + pad4(bytes.length));
    this.buf.set(bytes, at);
    // padding bytes are already zero: the buffer is zero-filled and never reused
    return this;
  }

  get length(): number {
    return this.len;
  }

  /** A copy of the bytes written so far. */
  finish(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.len));
  }
}

/** Reads XDR items from a buffer in order; `end()` checks nothing is left over. */
export class XdrReader {
  private readonly buf: Buffer;
  private pos: number;
  private readonly limit: number;

  constructor(bytes: Uint8Array, offset = 0, end = bytes.length) {
    this.buf = Buffer.isBuffer(bytes)
      ? bytes
      : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = offset;
    this.limit = end;
  }

  private take(n: number, what: string): number {
    if (n > this.limit - this.pos) {
      throw new XdrError(`${what}: need ${n} bytes at offset ${this.pos}, have ${this.remaining}`);
    }
    const at = this.pos;
    this.pos += n;
    return at;
  }

  get offset(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.limit - this.pos;
  }

  int(): number {
    return this.buf.readInt32BE(this.take(4, 'int'));
  }

  uint(): number {
    return this.buf.readUInt32BE(this.take(4, 'unsigned int'));
  }

  hyper(): bigint {
    return this.buf.readBigInt64BE(this.take(8, 'hyper'));
  }

  uhyper(): bigint {
    return this.buf.readBigUInt64BE(this.take(8, 'unsigned hyper'));
  }

  /** A (signed or unsigned) hyper as a number; throws beyond Number.MAX_SAFE_INTEGER. */
  hyperNumber(unsigned = true): number {
    const v = unsigned ? this.uhyper() : this.hyper();
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new XdrError(`hyper ${v} is not a safe integer`);
    }
    return Number(v);
  }

  bool(): boolean {
    const v = this.int();
    if (v !== 0 && v !== 1) throw new XdrError(`bool must be 0 or 1, got ${v}`);
    return v === 1;
  }

  opaqueFixed(length: number): Buffer {
    const at = this.take(length + pad4(length), `opaque[${length}]`);
    return Buffer.from(this.buf.subarray(at, at + length));
  }

  opaqueVar(max = UINT_MAX): Buffer {
    const n = this.uint();
    if (n > max) throw new XdrError(`opaque<${max}> length ${n}`);
    return this.opaqueFixed(n);
  }

  string(max = UINT_MAX): string {
    const n = this.uint();
    if (n > max) throw new XdrError(`string<${max}> length ${n}`);
    const at = this.take(n + pad4(n), `string of ${n} bytes`);
    return this.buf.toString('utf8', at, at + n);
  }

  optional<T>(read: (r: this) => T): T | null {
    return this.bool() ? read(this) : null;
  }

  array<T>(read: (r: this) => T, max = UINT_MAX): T[] {
    const n = this.uint();
    if (n > max) throw new XdrError(`array<${max}> count ${n}`);
    // every element takes at least 4 bytes: refuse counts the input cannot hold
    if (n > this.remaining / 4) throw new XdrError(`array count ${n} exceeds input`);
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(read(this));
    return out;
  }

  fixedArray<T>(length: number, read: (r: this) => T): T[] {
    const out: T[] = [];
    for (let i = 0; i < length; i++) out.push(read(this));
    return out;
  }

  /** Throws unless the whole input was consumed (catches struct layout mistakes). */
  end(what = 'message'): void {
    if (this.pos !== this.limit) {
      throw new XdrError(`${what}: ${this.limit - this.pos} trailing bytes`);
    }
  }
}
