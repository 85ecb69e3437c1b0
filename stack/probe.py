#!/usr/bin/env python3
"""Readiness probes for the local stack, using only the standard library.

    probe.py cql   HOST PORT   CQL native protocol v4: STARTUP, then
                               QUERY "SELECT release_version FROM system.local";
                               prints the release version.
    probe.py kafka HOST PORT   Kafka ApiVersions v0, then a Metadata request;
                               prints the broker list.
    probe.py redis HOST PORT   RESP PING, expects +PONG.

Options: --timeout SECONDS (socket timeout, default 3).
Exit status 0 when the service gave a real, well-formed answer, 1 otherwise
(the reason goes to stderr). One attempt only: callers loop.
"""
import argparse
import socket
import struct
import sys


class ProbeError(Exception):
    pass


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ProbeError("connection closed by peer after %d/%d bytes" % (len(buf), n))
        buf.extend(chunk)
    return bytes(buf)


class Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ProbeError("truncated response")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def i8(self):
        return struct.unpack(">b", self.take(1))[0]

    def i16(self):
        return struct.unpack(">h", self.take(2))[0]

    def u16(self):
        return struct.unpack(">H", self.take(2))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def short_string(self):  # CQL [string] and Kafka STRING: int16 length
        n = self.i16()
        if n < 0:
            return None
        return self.take(n).decode("utf-8", "replace")


# --------------------------------------------------------------------------
# Cassandra: CQL native protocol v4
# --------------------------------------------------------------------------
CQL_VERSION = 0x04
OP_ERROR, OP_STARTUP, OP_READY, OP_QUERY, OP_RESULT = 0x00, 0x01, 0x02, 0x07, 0x08


def cql_string(s):
    b = s.encode("utf-8")
    return struct.pack(">H", len(b)) + b


def cql_frame(stream, opcode, body):
    return struct.pack(">BBhBi", CQL_VERSION, 0, stream, opcode, len(body)) + body


def cql_read_frame(sock):
    header = recv_exact(sock, 9)
    version, _flags, stream, opcode, length = struct.unpack(">BBhBi", header)
    if version & 0x7F != CQL_VERSION or not version & 0x80:
        raise ProbeError("unexpected CQL frame version byte 0x%02x" % version)
    return stream, opcode, recv_exact(sock, length)


def cql_error(body):
    r = Reader(body)
    code = r.i32()
    return "server ERROR 0x%04x: %s" % (code, r.short_string())


def probe_cql(host, port, timeout):
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        startup = struct.pack(">H", 1) + cql_string("CQL_VERSION") + cql_string("3.0.0")
        sock.sendall(cql_frame(1, OP_STARTUP, startup))
        _, opcode, body = cql_read_frame(sock)
        if opcode == OP_ERROR:
            raise ProbeError("STARTUP: " + cql_error(body))
        if opcode != OP_READY:
            raise ProbeError("STARTUP: expected READY, got opcode 0x%02x" % opcode)

        query = "SELECT release_version FROM system.local"
        qb = query.encode("utf-8")
        # [long string] query, [short] consistency ONE, [byte] flags 0
        body = struct.pack(">i", len(qb)) + qb + struct.pack(">HB", 0x0001, 0)
        sock.sendall(cql_frame(2, OP_QUERY, body))
        _, opcode, body = cql_read_frame(sock)
        if opcode == OP_ERROR:
            raise ProbeError("QUERY: " + cql_error(body))
        if opcode != OP_RESULT:
            raise ProbeError("QUERY: expected RESULT, got opcode 0x%02x" % opcode)
        return "release_version=%s" % (cql_rows_first_value(body) or "?")


def cql_rows_first_value(body):
    """Best-effort decode of the first cell of a Rows result."""
    r = Reader(body)
    if r.i32() != 0x0002:  # kind Rows
        return None
    flags = r.i32()
    columns = r.i32()
    if flags & 0x0002:  # has_more_pages: paging state [bytes]
        n = r.i32()
        if n > 0:
            r.take(n)
    if not flags & 0x0004:  # metadata present
        if flags & 0x0001:  # global table spec
            r.short_string()
            r.short_string()
        for _ in range(columns):
            if not flags & 0x0001:
                r.short_string()
                r.short_string()
            r.short_string()  # column name
            type_id = r.u16()
            if type_id == 0x0000:  # custom: class name
                r.short_string()
            elif type_id > 0x0019:  # collections/udt/tuple: not expected here
                return None
    if r.i32() < 1:
        return None
    n = r.i32()
    if n < 0:
        return None
    return r.take(n).decode("utf-8", "replace")


# --------------------------------------------------------------------------
# Kafka: ApiVersions v0 and Metadata v1..v8 (non-flexible versions)
# --------------------------------------------------------------------------
API_METADATA, API_VERSIONS = 3, 18


def kafka_call(sock, api_key, api_version, correlation_id, body):
    client_id = b"stack-probe"
    # request header v1: api_key, api_version, correlation_id, client_id
    header = struct.pack(">hhih", api_key, api_version, correlation_id, len(client_id)) + client_id
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    size = struct.unpack(">i", recv_exact(sock, 4))[0]
    if size <= 0 or size > 64 * 1024 * 1024:
        raise ProbeError("implausible response size %d" % size)
    r = Reader(recv_exact(sock, size))
    got = r.i32()  # response header v0: correlation_id
    if got != correlation_id:
        raise ProbeError("correlation id mismatch (%d != %d)" % (got, correlation_id))
    return r


def probe_kafka(host, port, timeout):
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        r = kafka_call(sock, API_VERSIONS, 0, 1, b"")
        err = r.i16()
        if err != 0:
            raise ProbeError("ApiVersions error_code=%d" % err)
        ranges = {}
        for _ in range(r.i32()):
            key, lo, hi = r.i16(), r.i16(), r.i16()
            ranges[key] = (lo, hi)
        if API_METADATA not in ranges:
            raise ProbeError("broker does not advertise the Metadata API")
        lo, hi = ranges[API_METADATA]
        version = next((v for v in range(8, 0, -1) if lo <= v <= hi), None)
        if version is None:
            return "api_versions=%d (metadata v%d-v%d not probed)" % (len(ranges), lo, hi)

        body = struct.pack(">i", -1)  # topics: null = all
        if version >= 4:
            body += b"\x00"  # allow_auto_topic_creation=false
        if version >= 8:
            body += b"\x00\x00"  # include cluster/topic authorized operations
        r = kafka_call(sock, API_METADATA, version, 2, body)
        if version >= 3:
            r.i32()  # throttle_time_ms
        brokers = []
        for _ in range(r.i32()):
            node_id = r.i32()
            bhost = r.short_string()
            bport = r.i32()
            r.short_string()  # rack
            brokers.append("%d@%s:%d" % (node_id, bhost, bport))
        if not brokers:
            raise ProbeError("Metadata v%d answered with no brokers" % version)
        return "brokers=%s metadata=v%d" % (",".join(brokers), version)


# --------------------------------------------------------------------------
# Redis: RESP PING
# --------------------------------------------------------------------------
def probe_redis(host, port, timeout):
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        line = b""
        while not line.endswith(b"\r\n"):
            chunk = sock.recv(256)
            if not chunk:
                break
            line += chunk
        if line.strip() != b"+PONG":
            raise ProbeError("unexpected reply %r" % line[:80])
        return "PONG"


PROBES = {"cql": probe_cql, "cassandra": probe_cql, "kafka": probe_kafka, "redis": probe_redis}


def main():
    ap = argparse.ArgumentParser(description="one-shot readiness probe")
    ap.add_argument("kind", choices=sorted(PROBES))
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--timeout", type=float, default=3.0)
    ap.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    args = ap.parse_args()
    try:
        info = PROBES[args.kind](args.host, args.port, args.timeout)
    except (OSError, ProbeError, struct.error) as e:
        print("%s %s:%d not answering: %s" % (args.kind, args.host, args.port, e), file=sys.stderr)
        return 1
    if not args.quiet:
        print("%s %s:%d ok %s" % (args.kind, args.host, args.port, info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
