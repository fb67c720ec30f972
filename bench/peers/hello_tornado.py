"""Hello world from Python Tornado 6: the peer of squall's
examples/hello_server.rs in bench/http.sh.

    python3 bench/peers/hello_tornado.py 8888
    curl http://127.0.0.1:8888/

Tornado's own hello-world app, as its README has it, on asyncio's default
loop. Access-log lines are not printed (logging is left unconfigured). The
listen backlog is 1024, as mio's and tokio's listeners use, so -c 1000
measures serving rather than SYN retries.
"""

import asyncio
import sys

import tornado.web


class MainHandler(tornado.web.RequestHandler):
    def get(self):
        self.write("Hello, world")


async def main(port):
    app = tornado.web.Application([(r"/", MainHandler)])
    app.listen(port, address="127.0.0.1", backlog=1024)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 8888))
