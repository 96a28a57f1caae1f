"""`python3 tools/tx-off.py DEV...`: TX checksum offload off on each DEV, as ethtool's
`-K DEV tx off` (ETHTOOL_STXCSUM through SIOCETHTOOL), with no ethtool installed.

OVS's userspace datapath reads veths with AF_PACKET and would pass partial checksums on,
so TCP through a veth port fails unless the sender computes them. Used by stack.sh's
kumo-public namespace (tools/stack-steps.sh) and the test lab's outside world
(test/helpers/lab-outside.ts).
"""
import array
import fcntl
import socket
import struct
import sys

for dev in sys.argv[1:]:
    buf = array.array("B", struct.pack("II", 0x17, 0))
    ifr = struct.pack("16sP", dev.encode(), buf.buffer_info()[0])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s.fileno(), 0x8946, ifr)
