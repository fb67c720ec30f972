"""Static files from Python Tornado 6: the peer of squall's
examples/static_server.rs in bench/static.sh.

    python3 bench/peers/static_tornado.py DIR 8888
    curl http://127.0.0.1:8888/static/small.txt

Tornado's own StaticFileHandler through the `static_path` setting, on
asyncio's default loop; access-log lines are not printed (logging is left
unconfigured).
"""

import asyncio
import sys

import tornado.web


async def main(path, port):
    app = tornado.web.Application([], static_path=path)
    app.listen(port, address="127.0.0.1", backlog=1024)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 8888))
