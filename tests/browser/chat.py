"""Drives headless Chromium through chromedriver (the W3C WebDriver protocol,
plain HTTP + JSON, so no Selenium) against the websocket_chat example: two
tabs load the page, the first posts a message, the second must show it.

Usage: chat.py URL CHROMEDRIVER_PORT
Prints "ok: ..." and exits 0, or raises.
"""
import json
import sys
import time
import urllib.request

url, port = sys.argv[1], int(sys.argv[2])
base = f"http://127.0.0.1:{port}"


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"{}").get("value")


def wait(what, check, timeout=15.0):
    deadline = time.time() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.time() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)




def _ready():
    try:
        return call("GET", "/status")["ready"]
    except OSError:
        return False


wait("chromedriver", _ready)
caps = {"capabilities": {"alwaysMatch": {
    "browserName": "chrome",
    "goog:chromeOptions": {"args": [
        "--headless=new", "--no-sandbox", "--disable-gpu",
        "--disable-dev-shm-usage", "--no-first-run",
    ]},
}}}
session = call("POST", "/session", caps)["sessionId"]
s = f"/session/{session}"
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
try:
    call("POST", s + "/url", {"url": url})
    first = call("GET", s + "/window")
    second = call("POST", s + "/window/new", {"type": "tab"})["handle"]
    call("POST", s + "/window", {"handle": second})
    call("POST", s + "/url", {"url": url})

    def socket_open():
        # The page's WebSocket is open (readyState 1) before we post.
        return call("POST", s + "/execute/sync",
                    {"script": "return socket.readyState", "args": []}) == 1

    wait("the second tab's socket", socket_open)
    call("POST", s + "/window", {"handle": first})
    wait("the first tab's socket", socket_open)
    text = f"hello from the browser {time.time():.0f}"
    box = call("POST", s + "/element", {"using": "css selector", "value": "#message"})[ELEMENT]
    call("POST", f"{s}/element/{box}/value", {"text": text})
    submit = call("POST", s + "/element",
                  {"using": "css selector", "value": "input[type=submit]"})[ELEMENT]
    call("POST", f"{s}/element/{submit}/click", {})

    def inbox_has_it():
        inbox = call("POST", s + "/element", {"using": "css selector", "value": "#inbox"})[ELEMENT]
        return text in call("GET", f"{s}/element/{inbox}/text")

    wait("the message in the first tab", inbox_has_it)
    call("POST", s + "/window", {"handle": second})
    wait("the message in the second tab", inbox_has_it)
    print(f"ok: {text!r} arrived in both tabs")
finally:
    call("DELETE", s)
