#!/usr/bin/env python3
"""Readiness probes for the local stack, using only the standard library.

    probe.py cql   HOST PORT   CQL native protocol v4: STARTUP, then
                               QUERY "SELECT release_version FROM system.local";
                               prints the release version.
    probe.py kafka HOST PORT   Kafka ApiVersions v0, then a Metadata request;
                               prints the broker list.
    probe.py redis HOST PORT   RESP PING, expects +PONG.

For the replicated topology (stack/replicated.sh):

    probe.py cql-ring HOST PORT
        How many Cassandra nodes this coordinator sees up: the number of
        rows of system.peers, then a read at consistency ALL of one
        partition of system_distributed (replication factor 3, so every
        node of a three-node cluster is a replica). Prints
        "up=3 peers=2" when the read succeeded, "up=2 peers=2" from an
        Unavailable answer (its count of live replicas), "up=?" when the
        read timed out (a node the coordinator still counts live, e.g.
        one killed seconds ago, does not answer).
    probe.py kafka-cluster HOST PORT
        Metadata for all topics; prints "brokers=3 partitions=N
        under_replicated=U offline=O" (a partition is under-replicated
        when its ISR is smaller than its replica set, offline when it has
        no leader).
    probe.py kafka-leader HOST PORT TOPIC PARTITION
        Prints "NODE_ID HOST:PORT" of the partition's leader; exits 1 if
        the topic or partition is unknown or has no leader.
    probe.py kafka-quorum HOST PORT
        A KRaft controller's listener: ApiVersions, then DescribeQuorum v1
        of the metadata log. Only the active controller describes the
        quorum: it prints "role=leader id=ID epoch=E high_watermark=H
        voters=ID:LAG_MS,... observers=ID,..." (LAG_MS: how long ago the
        leader last saw that voter caught up; -1 unknown); another
        controller answers NOT_LEADER_OR_FOLLOWER (and names no leader),
        printed as "role=follower".

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


CL_ONE, CL_ALL = 0x0001, 0x0005
ERR_UNAVAILABLE = 0x1000


def cql_connect(host, port, timeout):
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.settimeout(timeout)
    startup = struct.pack(">H", 1) + cql_string("CQL_VERSION") + cql_string("3.0.0")
    sock.sendall(cql_frame(1, OP_STARTUP, startup))
    _, opcode, body = cql_read_frame(sock)
    if opcode == OP_ERROR:
        sock.close()
        raise ProbeError("STARTUP: " + cql_error(body))
    if opcode != OP_READY:
        sock.close()
        raise ProbeError("STARTUP: expected READY, got opcode 0x%02x" % opcode)
    return sock


def cql_query(sock, stream, query, consistency=CL_ONE):
    """Returns (opcode, body) of the answer: RESULT or ERROR."""
    qb = query.encode("utf-8")
    # [long string] query, [short] consistency, [byte] flags 0
    body = struct.pack(">i", len(qb)) + qb + struct.pack(">HB", consistency, 0)
    sock.sendall(cql_frame(stream, OP_QUERY, body))
    _, opcode, body = cql_read_frame(sock)
    if opcode not in (OP_RESULT, OP_ERROR):
        raise ProbeError("QUERY: expected RESULT, got opcode 0x%02x" % opcode)
    return opcode, body


def probe_cql(host, port, timeout):
    with cql_connect(host, port, timeout) as sock:
        opcode, body = cql_query(sock, 2, "SELECT release_version FROM system.local")
        if opcode == OP_ERROR:
            raise ProbeError("QUERY: " + cql_error(body))
        return "release_version=%s" % (cql_rows_first_value(body) or "?")


def probe_cql_ring(host, port, timeout):
    with cql_connect(host, port, timeout) as sock:
        opcode, body = cql_query(sock, 2, "SELECT peer FROM system.peers")
        if opcode == OP_ERROR:
            raise ProbeError("system.peers: " + cql_error(body))
        peers = cql_rows_count(body)
        # Any partition will do: at ALL every replica must answer, and the
        # coordinator refuses at once (Unavailable) when its failure
        # detector counts fewer live replicas than that.
        try:
            opcode, body = cql_query(
                sock, 3,
                "SELECT keyspace_name FROM system_distributed.repair_history "
                "WHERE keyspace_name = 'stack_probe' AND columnfamily_name = 'ring' LIMIT 1",
                CL_ALL)
        except socket.timeout:
            # A node that died a moment ago: the coordinator still counts it
            # live and waits for it (until its read timeout).
            return "up=? peers=%d (no answer at ALL within %gs)" % (peers, timeout)
        if opcode == OP_RESULT:
            return "up=%d peers=%d" % (peers + 1, peers)
        r = Reader(body)
        code = r.i32()
        message = r.short_string()
        if code == ERR_UNAVAILABLE:
            r.u16()  # consistency
            required = r.i32()
            alive = r.i32()
            return "up=%d peers=%d (ALL needs %d replicas)" % (alive, peers, required)
        raise ProbeError("read at ALL: server ERROR 0x%04x: %s" % (code, message))


def cql_rows_count(body):
    """The row count of a Rows result whose columns are all of simple types."""
    r = Reader(body)
    if r.i32() != 0x0002:  # kind Rows
        raise ProbeError("expected a Rows result")
    flags = r.i32()
    columns = r.i32()
    if flags & 0x0002:
        n = r.i32()
        if n > 0:
            r.take(n)
    if not flags & 0x0004:
        if flags & 0x0001:
            r.short_string()
            r.short_string()
        for _ in range(columns):
            if not flags & 0x0001:
                r.short_string()
                r.short_string()
            r.short_string()
            type_id = r.u16()
            if type_id == 0x0000:
                r.short_string()
            elif type_id > 0x0019:
                raise ProbeError("unexpected column type 0x%04x" % type_id)
    return r.i32()


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
API_METADATA, API_VERSIONS, API_DESCRIBE_QUORUM = 3, 18, 55
ERROR_NOT_LEADER_OR_FOLLOWER = 6


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


def uvarint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_uvarint(r):
    shift = value = 0
    while True:
        byte = r.take(1)[0]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value
        shift += 7
        if shift > 28:
            raise ProbeError("varint too long")


def skip_tagged_fields(r):
    for _ in range(read_uvarint(r)):
        read_uvarint(r)  # tag
        r.take(read_uvarint(r))


def compact_string(r):
    n = read_uvarint(r) - 1
    return None if n < 0 else r.take(n).decode("utf-8", "replace")


def kafka_call_flexible(sock, api_key, api_version, correlation_id, body):
    """A request of a flexible version: request header v2 (tagged fields
    after the client id), response header v1 (tagged fields after the
    correlation id)."""
    client_id = b"stack-probe"
    header = struct.pack(">hhih", api_key, api_version, correlation_id, len(client_id)) + client_id + b"\x00"
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    size = struct.unpack(">i", recv_exact(sock, 4))[0]
    if size <= 0 or size > 64 * 1024 * 1024:
        raise ProbeError("implausible response size %d" % size)
    r = Reader(recv_exact(sock, size))
    got = r.i32()
    if got != correlation_id:
        raise ProbeError("correlation id mismatch (%d != %d)" % (got, correlation_id))
    skip_tagged_fields(r)
    return r


def kafka_api_versions(sock):
    r = kafka_call(sock, API_VERSIONS, 0, 1, b"")
    err = r.i16()
    if err != 0:
        raise ProbeError("ApiVersions error_code=%d" % err)
    ranges = {}
    for _ in range(r.i32()):
        key, lo, hi = r.i16(), r.i16(), r.i16()
        ranges[key] = (lo, hi)
    return ranges


def kafka_quorum(host, port, timeout):
    """DescribeQuorum v1 of __cluster_metadata-0, sent to a controller."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        ranges = kafka_api_versions(sock)
        lo, hi = ranges.get(API_DESCRIBE_QUORUM, (1, 0))
        if not lo <= 1 <= hi:
            raise ProbeError("DescribeQuorum v1 not served (v%d-v%d)" % (lo, hi))
        topic = b"__cluster_metadata"
        body = (uvarint(2) + uvarint(len(topic) + 1) + topic  # one topic
                + uvarint(2) + struct.pack(">i", 0) + b"\x00"  # partition 0
                + b"\x00"  # topic's tagged fields
                + b"\x00")  # request's tagged fields
        r = kafka_call_flexible(sock, API_DESCRIBE_QUORUM, 1, 2, body)
        err = r.i16()
        if err not in (0, ERROR_NOT_LEADER_OR_FOLLOWER):
            raise ProbeError("DescribeQuorum error_code=%d" % err)
        if read_uvarint(r) - 1 < 1:
            raise ProbeError("DescribeQuorum answered with no topic (error_code=%d)" % err)
        compact_string(r)
        if read_uvarint(r) - 1 < 1:
            raise ProbeError("DescribeQuorum answered with no partition (error_code=%d)" % err)
        r.i32()  # partition_index
        perr = r.i16()
        leader, epoch, hw = r.i32(), r.i32(), struct.unpack(">q", r.take(8))[0]

        def replicas():
            out = []
            for _ in range(read_uvarint(r) - 1):
                rid = r.i32()
                leo, fetched, caught_up = struct.unpack(">qqq", r.take(24))
                skip_tagged_fields(r)
                out.append((rid, leo, fetched, caught_up))
            return out

        voters = replicas()
        observers = replicas()
        if err or perr:
            return {"role": "follower", "leader": leader, "epoch": epoch}
        return {"role": "leader", "leader": leader, "epoch": epoch, "high_watermark": hw,
                "voters": voters, "observers": observers}


def probe_kafka_quorum(host, port, timeout):
    q = kafka_quorum(host, port, timeout)
    if q["role"] != "leader":
        return "role=follower"
    # The leader reports its own last caught-up time as its clock now.
    now = max((v[3] for v in q["voters"]), default=-1)
    lags = ",".join("%d:%d" % (rid, now - caught_up if caught_up >= 0 and now >= 0 else -1)
                    for rid, _, _, caught_up in q["voters"])
    return "role=leader id=%d epoch=%d high_watermark=%d voters=%s observers=%s" % (
        q["leader"], q["epoch"], q["high_watermark"], lags,
        ",".join(str(o[0]) for o in sorted(q["observers"])) or "-")


def kafka_metadata(host, port, timeout, topics=None):
    """Brokers {id: "host:port"} and topics {name: [(partition, leader,
    replicas, isr)]}, from the highest Metadata version in v1..v8 that the
    broker serves. topics=None asks for all topics."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        ranges = kafka_api_versions(sock)
        if API_METADATA not in ranges:
            raise ProbeError("broker does not advertise the Metadata API")
        lo, hi = ranges[API_METADATA]
        version = next((v for v in range(8, 0, -1) if lo <= v <= hi), None)
        if version is None:
            raise ProbeError("no Metadata version in v1..v8 (broker serves v%d-v%d)" % (lo, hi))

        if topics is None:
            body = struct.pack(">i", -1)  # topics: null = all
        else:
            body = struct.pack(">i", len(topics))
            for name in topics:
                b = name.encode("utf-8")
                body += struct.pack(">h", len(b)) + b
        if version >= 4:
            body += b"\x00"  # allow_auto_topic_creation=false
        if version >= 8:
            body += b"\x00\x00"  # include cluster/topic authorized operations
        r = kafka_call(sock, API_METADATA, version, 2, body)
        if version >= 3:
            r.i32()  # throttle_time_ms
        brokers = {}
        for _ in range(r.i32()):
            node_id = r.i32()
            bhost = r.short_string()
            bport = r.i32()
            r.short_string()  # rack
            brokers[node_id] = "%s:%d" % (bhost, bport)
        if version >= 2:
            r.short_string()  # cluster_id
        r.i32()  # controller_id
        parsed = {}
        for _ in range(r.i32()):
            r.i16()  # topic error_code
            name = r.short_string()
            r.i8()  # is_internal
            partitions = []
            for _ in range(r.i32()):
                error = r.i16()
                index = r.i32()
                leader = r.i32()
                if version >= 7:
                    r.i32()  # leader_epoch
                replicas = [r.i32() for _ in range(r.i32())]
                isr = [r.i32() for _ in range(r.i32())]
                if version >= 5:
                    [r.i32() for _ in range(r.i32())]  # offline_replicas
                partitions.append((index, leader, replicas, isr, error))
            if version >= 8:
                r.i32()  # topic_authorized_operations
            parsed[name] = partitions
        return brokers, parsed, version


def probe_kafka(host, port, timeout):
    brokers, _, version = kafka_metadata(host, port, timeout)
    if not brokers:
        raise ProbeError("Metadata answered with no brokers")
    listed = ",".join("%d@%s" % (k, v) for k, v in sorted(brokers.items()))
    return "brokers=%s metadata=v%d" % (listed, version)


def probe_kafka_cluster(host, port, timeout):
    brokers, topics, _ = kafka_metadata(host, port, timeout)
    total = under = offline = 0
    for partitions in topics.values():
        for _, leader, replicas, isr, _ in partitions:
            total += 1
            if len(isr) < len(replicas):
                under += 1
            if leader < 0:
                offline += 1
    return "brokers=%d partitions=%d under_replicated=%d offline=%d" % (
        len(brokers), total, under, offline)


def kafka_leader(host, port, timeout, topic, partition):
    brokers, topics, _ = kafka_metadata(host, port, timeout, [topic])
    for index, leader, _, _, error in topics.get(topic, []):
        if index == partition:
            if leader < 0:
                raise ProbeError("%s-%d has no leader (error_code=%d)" % (topic, partition, error))
            return "%d %s" % (leader, brokers.get(leader, "?"))
    raise ProbeError("no partition %s-%d" % (topic, partition))


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


PROBES = {"cql": probe_cql, "cassandra": probe_cql, "kafka": probe_kafka, "redis": probe_redis,
          "cql-ring": probe_cql_ring, "kafka-cluster": probe_kafka_cluster,
          "kafka-quorum": probe_kafka_quorum}


def main():
    ap = argparse.ArgumentParser(description="one-shot readiness probe")
    ap.add_argument("kind", choices=sorted(PROBES) + ["kafka-leader"])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("topic", nargs="?", help="kafka-leader only")
    ap.add_argument("partition", nargs="?", type=int, help="kafka-leader only")
    ap.add_argument("--timeout", type=float, default=3.0)
    ap.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    args = ap.parse_args()
    try:
        if args.kind == "kafka-leader":
            if args.topic is None or args.partition is None:
                ap.error("kafka-leader needs TOPIC and PARTITION")
            # Bare, for scripts: "NODE_ID HOST:PORT".
            print(kafka_leader(args.host, args.port, args.timeout, args.topic, args.partition))
            return 0
        info = PROBES[args.kind](args.host, args.port, args.timeout)
    except (OSError, ProbeError, struct.error) as e:
        print("%s %s:%d not answering: %s" % (args.kind, args.host, args.port, e), file=sys.stderr)
        return 1
    if not args.quiet:
        print("%s %s:%d ok %s" % (args.kind, args.host, args.port, info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
