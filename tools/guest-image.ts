/**
 * `node tools/guest-image.ts DIR`: builds the test guest (test/helpers/guest.ts: Debian's
 * cloud kernel and a busybox initramfs) into DIR, or finds it there, and prints three
 * lines: the kernel's path, the initramfs's path and the base kernel command line.
 * `./stack.sh` uploads what it prints as the `cirros-like` images (tools/stack-steps.sh
 * kumo_guest_images), so the tour (docs/tour.md) boots the very guest the tests boot.
 */
import { buildTestGuest } from '../test/helpers/guest.ts';

const dir = process.argv[2];
if (dir === undefined || !dir.startsWith('/')) {
  process.stderr.write('usage: node tools/guest-image.ts ABSOLUTE-DIR\n');
  process.exit(2);
}
const guest = await buildTestGuest({ cacheDir: dir });
process.stdout.write(`${guest.kernel}\n${guest.initrd}\n${guest.cmdline}\n`);
