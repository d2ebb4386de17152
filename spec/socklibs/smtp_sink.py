"""SMTP sink for spec/socket_libs_spec.lua: Debian's aiosmtpd on 127.0.0.1
and a free port, written to the file argv[1] (the spec's port file); each
message received is appended to argv[2] as FROM, RCPT..., its content and
a line "END"."""
import asyncio
import os
import sys

from aiosmtpd.smtp import SMTP


class Handler:
    async def handle_DATA(self, server, session, envelope):
        with open(sys.argv[2], "ab") as f:
            f.write(b"FROM " + envelope.mail_from.encode() + b"\n")
            for rcpt in envelope.rcpt_tos:
                f.write(b"RCPT " + rcpt.encode() + b"\n")
            f.write(envelope.original_content + b"\nEND\n")
        return "250 OK"


async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Handler()), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write("%d\n" % port)
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    await server.serve_forever()


asyncio.run(main())
