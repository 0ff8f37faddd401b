"""What the python3-stomp scripts beside this one share: a listener that
queues what the broker sends, and the check that ends a script at the
first failure. Scripts run as `python3 testdata/NAME.py`, which puts this
folder on the import path.
"""
import queue
import sys

import stomp

TIMEOUT = 10


class Listener(stomp.ConnectionListener):
    def __init__(self):
        self.messages = queue.Queue()
        self.receipts = queue.Queue()
        self.errors = queue.Queue()

    def on_message(self, frame):
        self.messages.put(frame)

    def on_receipt(self, frame):
        self.receipts.put(frame.headers["receipt-id"])

    def on_error(self, frame):
        self.errors.put(frame)


def check(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)
    print("ok:", what)
