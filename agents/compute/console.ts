/**
 * `get_console_output`: the tail of an instance's serial console log
 * (`<instances_path>/<uuid>/console.log`, written by qemu), as Nova's os-getConsoleOutput.
 *
 * Invariant: at most the last `MAX_BYTES` of the file are ever read, whatever its size or
 * the length asked for, so a chatty guest cannot make the agent (or the reply) large; a
 * line cut by that window is dropped rather than returned half; the tail is Nova's
 * (`novaTail`), counted in '\n'-separated parts as Nova's clients count them.
 */
import { open } from 'node:fs/promises';

export const MAX_CONSOLE_BYTES = 1024 * 1024;

export class ConsoleLogMissingError extends Error {
  override name = 'ConsoleLogMissingError';
}

/**
 * Nova's _tail_log: `'\n'.join(log.split('\n')[-length:])`, so a client splitting the
 * answer on '\n' gets exactly `length` parts (a log ending in '\n' ends in an empty one);
 * 0 gives '', absent or negative the whole text.
 */
export function novaTail(text: string, length?: number): string {
  if (length === undefined || length < 0) return text;
  if (length === 0) return '';
  return text.split('\n').slice(-length).join('\n');
}

/** The last `length` lines (absent or -1: all that fit in the window) of `path`. */
export async function consoleTail(
  path: string,
  length?: number,
  maxBytes = MAX_CONSOLE_BYTES,
): Promise<string> {
  const fh = await open(path, 'r').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') throw new ConsoleLogMissingError(`no console log at ${path}`);
    throw e;
  });
  try {
    const { size } = await fh.stat();
    const start = Math.max(0, size - maxBytes);
    const buf = Buffer.alloc(size - start);
    const { bytesRead } = await fh.read(buf, 0, buf.length, start);
    let text = buf.subarray(0, bytesRead).toString('utf8');
    if (start > 0) text = text.slice(text.indexOf('\n') + 1);
    return novaTail(text, length);
  } finally {
    await fh.close();
  }
}
