"""A UDP echo server on asyncio's create_datagram_endpoint and uvloop
(plain asyncio when uvloop is missing), for bench/udp_peers.sh.
    echo_uvloop.py PORT
"""
import asyncio
import sys

try:
    import uvloop
except ImportError:
    uvloop = None


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


async def main(port):
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", port))
    await asyncio.Event().wait()


if __name__ == "__main__":
    if uvloop:
        uvloop.install()
    asyncio.run(main(int(sys.argv[1])))
