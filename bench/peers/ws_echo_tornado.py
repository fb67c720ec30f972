"""WebSocket echo from Python Tornado 6: the Tornado peer of
bench/peers/src/bin/ws_echo_squall.rs in bench/websocket.sh.

    python3 bench/peers/ws_echo_tornado.py 8888

Tornado's EchoWebSocket (as in its websocket_test.py): every message is
written back, text as text and binary as binary, on asyncio's default loop,
no compression. Access-log lines are not printed (logging is left
unconfigured). websocket_max_message_size stays at Tornado's default, 10 MiB:
the 1 MiB messages of the throughput test fit.
"""

import asyncio
import sys

import tornado.web
import tornado.websocket


class EchoWebSocket(tornado.websocket.WebSocketHandler):
    def on_message(self, message):
        self.write_message(message, binary=isinstance(message, bytes))


async def main(port):
    app = tornado.web.Application([(r"/", EchoWebSocket)])
    app.listen(port, address="127.0.0.1", backlog=1024)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 8888))
