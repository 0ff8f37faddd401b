"""Drive raftmq with Debian's python3-stomp: connect, send with receipt,
subscribe with client-individual ack, ack, nack, transactions.

Usage: /usr/bin/python3 interop.py HOST PORT
Exits 0 when every check held; prints what failed otherwise.
"""
import queue
import sys
import uuid

import stomp
from stomptest import TIMEOUT, Listener, check

HOST, PORT = sys.argv[1], int(sys.argv[2])


def receipt(listener, rid):
    try:
        got = listener.receipts.get(timeout=TIMEOUT)
    except queue.Empty:
        return False
    return got == rid


def message(listener):
    try:
        return listener.messages.get(timeout=TIMEOUT)
    except queue.Empty:
        return None


def no_message(listener, wait=1.0):
    try:
        listener.messages.get(timeout=wait)
        return False
    except queue.Empty:
        return True


def main():
    dest = "/queue/interop-" + uuid.uuid4().hex[:8]
    conn = stomp.Connection12([(HOST, PORT)], heartbeats=(1000, 1000))
    lis = Listener()
    conn.set_listener("", lis)
    conn.connect(wait=True, headers={"client-id": "interop"})
    check(conn.is_connected(), "connect (STOMP 1.2)")

    conn.send(dest, "first", headers={"receipt": "r-send", "app": "x:y\\z"})
    check(receipt(lis, "r-send"), "RECEIPT for a persistent SEND")

    conn.subscribe(dest, id="s1", ack="client-individual", headers={"receipt": "r-sub"})
    check(receipt(lis, "r-sub"), "RECEIPT for SUBSCRIBE")
    m = message(lis)
    check(m is not None and m.body == "first", "MESSAGE delivered")
    check(m.headers.get("app") == "x:y\\z", "escaped header value round trip")
    check(m.headers.get("subscription") == "s1" and "ack" in m.headers, "subscription and ack headers")

    # NACK: the message comes back, flagged.
    conn.nack(m.headers["ack"])
    m2 = message(lis)
    check(m2 is not None and m2.body == "first", "NACKed message redelivered")
    check(m2.headers.get("redelivered") == "true", "redelivered:true after NACK")
    check(m2.headers.get("delivery-count") == "2", "delivery-count 2 after NACK")

    conn.ack(m2.headers["ack"], receipt="r-ack")
    check(receipt(lis, "r-ack"), "RECEIPT for ACK")
    check(no_message(lis), "acked message not redelivered")

    # Transaction: committed sends arrive, aborted ones never do.
    tx = conn.begin()
    conn.send(dest, "in-tx", transaction=tx)
    check(no_message(lis, 0.5), "transactional SEND invisible before COMMIT")
    conn.commit(tx)
    m3 = message(lis)
    check(m3 is not None and m3.body == "in-tx", "transactional SEND delivered after COMMIT")

    tx2 = conn.begin()
    conn.send(dest, "aborted", transaction=tx2)
    conn.ack(m3.headers["ack"], transaction=tx2)
    conn.abort(tx2)
    m4 = message(lis)
    check(m4 is not None and m4.body == "in-tx", "ABORT makes the acked-in-transaction message deliverable again")
    check(m4.headers.get("redelivered") == "true", "redelivered:true after ABORT")
    conn.ack(m4.headers["ack"], receipt="r-ack2")
    check(receipt(lis, "r-ack2"), "RECEIPT for ACK after ABORT")
    check(no_message(lis), "aborted SEND never delivered")

    check(lis.errors.empty(), "no ERROR frames")
    conn.disconnect(receipt="r-disc")
    print("PASS")


main()
