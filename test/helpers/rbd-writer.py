#!/usr/bin/python3
"""A test stand-in for a stateful service on an RBD image: librbd, as a mapping uses it.

It opens the image, takes librbd's exclusive lock (as `rbd device map -o exclusive` does) and
writes numbered records, one every INTERVAL seconds, each stamped with node, token, sequence
number and wall-clock time. Block 0 holds the next free slot, so each leadership appends after
the last one and the image reads back as the history of who wrote what, when.

A client that was blocklisted gets an error from librbd on its next write: it logs the error
and exits 1. SIGTERM ends it cleanly (the stop command), releasing the lock.

Usage: rbd-writer.py CONF POOL/IMAGE NODE TOKEN LOG [INTERVAL]
   or: rbd-writer.py --device DEVICE NODE TOKEN LOG [INTERVAL]: the same records through a mapped
       device (the leader's mapping holds the lock), each write O_DIRECT and synchronous, so it
       reaches the image or fails. Its first line is `opened NODE TOKEN DEVICE`.
Log lines: `locked NODE TOKEN ADDR`, `wrote NODE TOKEN SEQ SLOT NS`, `failed NODE TOKEN SEQ ERROR`;
the device writer's `wrote` line is `wrote NODE TOKEN SEQ SLOT ISSUED_NS DONE_NS` (its last write's).
Read back: rbd-writer.py --dump CONF POOL/IMAGE prints `SLOT NODE TOKEN SEQ NS` per record.
"""
import mmap
import os
import signal
import struct
import sys
import time

import rados
import rbd

RECORD = 512
HEADER = struct.Struct('<Q')
STAMP = struct.Struct('<16s20sQQ')  # node, token, seq, ns


def open_image(conf, spec):
    pool, name = spec.split('/', 1)
    # No admin socket: the test cluster's conf gives every client.admin the same one, and a frozen
    # writer owning it would stall each new client's start (it waits for the socket's owner to answer).
    cluster = rados.Rados(conffile=conf, conf={'admin_socket': ''})
    cluster.connect(timeout=20)
    ioctx = cluster.open_ioctx(pool)
    return cluster, ioctx, rbd.Image(ioctx, name)


def dump(conf, spec):
    cluster, ioctx, image = open_image(conf, spec)
    try:
        (slots,) = HEADER.unpack(image.read(0, HEADER.size))
        data = image.read(RECORD, slots * RECORD) if slots else b''
        for slot in range(slots):
            raw = data[slot * RECORD : slot * RECORD + STAMP.size]
            node, token, seq, ns = STAMP.unpack(raw)
            if seq == 0:
                continue
            print(slot, node.rstrip(b'\0').decode(), token.rstrip(b'\0').decode(), seq, ns)
    finally:
        image.close()
        ioctx.close()
        cluster.shutdown()


def write(conf, spec, node, token, log, interval):
    out = open(log, 'a', buffering=1)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    cluster, ioctx, image = open_image(conf, spec)
    seq = 0
    try:
        image.lock_acquire(rbd.RBD_LOCK_MODE_EXCLUSIVE)
        out.write(f'locked {node} {token} {cluster.get_addrs()}\n')
        (slot,) = HEADER.unpack(image.read(0, HEADER.size))
        while not stopping:
            seq += 1
            record = STAMP.pack(node.encode(), token.encode(), seq, time.time_ns()).ljust(RECORD, b'\0')
            image.write(record, RECORD * (1 + slot))
            image.write(HEADER.pack(slot + 1), 0)
            out.write(f'wrote {node} {token} {seq} {slot} {time.time_ns()}\n')
            slot += 1
            time.sleep(interval)
    except Exception as err:  # librbd's error for a blocklisted (or otherwise fenced) client
        out.write(f'failed {node} {token} {seq} {type(err).__name__}: {err}\n')
        os._exit(1)
    image.close()
    ioctx.close()
    cluster.shutdown()
    out.write(f'stopped {node} {token} {seq}\n')


def open_synced_log(log):
    # Each line reaches the file before the write returns: in a UML machine the log is on hostfs,
    # whose page cache would otherwise hand lines to the host (where the test reads them) only at
    # writeback, tens of seconds later.
    return os.fdopen(os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_SYNC, 0o644), 'a', buffering=1)


def write_device(device, node, token, log, interval):
    out = open_synced_log(log)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    fd = os.open(device, os.O_RDWR | os.O_DIRECT | os.O_SYNC)
    block = mmap.mmap(-1, RECORD)  # page-aligned, as O_DIRECT asks
    seq = 0
    try:
        os.preadv(fd, [block], 0)
        (slot,) = HEADER.unpack(block[: HEADER.size])
        out.write(f'opened {node} {token} {device}\n')
        while not stopping:
            seq += 1
            block[:] = STAMP.pack(node.encode(), token.encode(), seq, time.time_ns()).ljust(RECORD, b'\0')
            os.pwritev(fd, [block], RECORD * (1 + slot))
            block[:] = HEADER.pack(slot + 1).ljust(RECORD, b'\0')
            issued = time.time_ns()
            os.pwritev(fd, [block], 0)
            # When the record's last write was issued, not only when it returned: a write issued
            # before its machine was paused can return after it runs again, and that is no late write.
            out.write(f'wrote {node} {token} {seq} {slot} {issued} {time.time_ns()}\n')
            slot += 1
            time.sleep(interval)
    except OSError as err:  # the kernel's error once the mapping's client was blocklisted
        out.write(f'failed {node} {token} {seq} {type(err).__name__}: {err}\n')
        os._exit(1)
    os.close(fd)
    out.write(f'stopped {node} {token} {seq}\n')


if __name__ == '__main__':
    if sys.argv[1] == '--dump':
        dump(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == '--device':
        write_device(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], float(sys.argv[6]) if len(sys.argv) > 6 else 0.05)
    else:
        write(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], float(sys.argv[6]) if len(sys.argv) > 6 else 0.05)
