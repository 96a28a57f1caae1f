/**
 * `get_console_output`: the tail of an instance's serial console log
 * (`<instances_path>/<uuid>/console.log`, written by qemu), as Nova's os-getConsoleOutput.
 *
 * Invariant: at most the last `MAX_BYTES` of the file are ever read, whatever its size or
 * the length asked for, so a chatty guest cannot make the agent (or the reply) large; a
 * line cut by that window is dropped rather than returned half.
 */
import { open } from 'node:fs/promises';

export const MAX_CONSOLE_BYTES = 1024 * 1024;

export class ConsoleLogMissingError extends Error {
  override name = 'ConsoleLogMissingError';
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
    if (length === undefined || length < 0) return text;
    if (length === 0) return '';
    const lines = text.split('\n');
    const trailing = lines.at(-1) === '' ? lines.pop() : undefined;
    const tail = lines.slice(-length).join('\n');
    return trailing === undefined ? tail : `${tail}\n`;
  } finally {
    await fh.close();
  }
}
