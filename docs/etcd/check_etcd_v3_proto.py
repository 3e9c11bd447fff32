#!/usr/bin/python3
"""Checks etcd_v3.proto against a live etcd 3.4 cluster with Debian's python3-grpcio (no C++ build).
Usage: protoc -Iapi/etcd --python_out=OUT etcd_v3.proto; PYTHONPATH=OUT /usr/bin/python3 check_etcd_v3_proto.py EP1,EP2,EP3
"""
import sys, threading, time, queue
import grpc
import etcd_v3_pb2 as pb

eps = sys.argv[1].split(",")
P = b"/sr-check/users/"
END = P[:-1] + bytes([P[-1] + 1])  # prefix scan: last byte + 1

def unary(ch, path, req, resp_type, **kw):
    return ch.unary_unary(path, request_serializer=lambda m: m.SerializeToString(),
                          response_deserializer=resp_type.FromString)(req, **kw)

ch = grpc.insecure_channel(eps[0])
T = lambda r: unary(ch, "/etcdserverpb.KV/Txn", r, pb.TxnResponse, timeout=3)
R = lambda r: unary(ch, "/etcdserverpb.KV/Range", r, pb.RangeResponse, timeout=3)
unary(ch, "/etcdserverpb.KV/DeleteRange", pb.DeleteRangeRequest(key=P, range_end=END), pb.DeleteRangeResponse, timeout=3)

def create(name, value, channel=ch):
    k = P + name
    req = pb.TxnRequest(compare=[pb.Compare(key=k, target=pb.Compare.CREATE, result=pb.Compare.EQUAL, create_revision=0)],
                        success=[pb.RequestOp(request_put=pb.PutRequest(key=k, value=value))],
                        failure=[pb.RequestOp(request_range=pb.RangeRequest(key=k))])
    return unary(channel, "/etcdserverpb.KV/Txn", req, pb.TxnResponse, timeout=3)

# 1. create-if-absent: a second create of the same name fails and returns the existing value
r1 = create(b"alice", b'{"v":1}'); r2 = create(b"alice", b'{"v":2}')
print("create alice:", r1.succeeded, "again:", r2.succeeded, "existing:", r2.responses[0].response_range.kvs[0].value)
# 2. 20 concurrent creates of one name through 3 endpoints: exactly one wins
chans = [grpc.insecure_channel(e) for e in eps]
wins = []
def racer(i):
    wins.append(create(b"race", b"%d" % i, chans[i % len(chans)]).succeeded)
ts = [threading.Thread(target=racer, args=(i,)) for i in range(20)]
[t.start() for t in ts]; [t.join() for t in ts]
print("concurrent creates: %d of %d succeeded" % (sum(wins), len(wins)))
# 3. compare-and-swap on mod_revision
kv = R(pb.RangeRequest(key=P + b"alice")).kvs[0]
cas = lambda rev, v: T(pb.TxnRequest(compare=[pb.Compare(key=P + b"alice", target=pb.Compare.MOD, result=pb.Compare.EQUAL, mod_revision=rev)],
                                    success=[pb.RequestOp(request_put=pb.PutRequest(key=P + b"alice", value=v))])).succeeded
print("CAS at mod_revision %d: %s; stale CAS again: %s" % (kv.mod_revision, cas(kv.mod_revision, b'{"v":3}'), cas(kv.mod_revision, b'{"v":4}')))
# 4. paginated prefix range at one revision
for i in range(25):
    create(b"u%03d" % i, b"x")
first = R(pb.RangeRequest(key=P, range_end=END, limit=10))
rev, got, key = first.header.revision, list(first.kvs), None
more = first.more
while more:
    page = R(pb.RangeRequest(key=got[-1].key + b"\0", range_end=END, limit=10, revision=rev))
    got += page.kvs; more = page.more
print("paged range: %d keys at revision %d (count %d)" % (len(got), rev, first.count))
# 5. watch from a revision: events after it, in order, with their revisions
q = queue.Queue()
reqs = queue.Queue()
def req_iter():
    while True:
        m = reqs.get()
        if m is None: return
        yield m
def watcher(channel, start):
    stream = channel.stream_stream("/etcdserverpb.Watch/Watch", request_serializer=lambda m: m.SerializeToString(),
                                   response_deserializer=pb.WatchResponse.FromString)(req_iter(), metadata=[("hasleader", "true")])
    try:
        for resp in stream:
            q.put(resp)
    except grpc.RpcError as e:
        q.put(e)
reqs.put(pb.WatchRequest(create_request=pb.WatchCreateRequest(key=P, range_end=END, start_revision=rev + 1)))
threading.Thread(target=watcher, args=(ch, rev + 1), daemon=True).start()
created = q.get(timeout=3); print("watch created:", created.created, "id", created.watch_id)
t0 = time.monotonic()
unary(ch, "/etcdserverpb.KV/DeleteRange", pb.DeleteRangeRequest(key=P + b"u000"), pb.DeleteRangeResponse, timeout=3)
ev = q.get(timeout=3)
print("watch event: %s %s mod_revision=%d after %.1f ms" % (pb.Event.EventType.Name(ev.events[0].type), ev.events[0].kv.key, ev.events[0].kv.mod_revision, 1000 * (time.monotonic() - t0)))
reqs.put(None)
# 6. watch from a compacted revision: canceled with compact_revision
for i in range(3):
    unary(ch, "/etcdserverpb.KV/Put", pb.PutRequest(key=P + b"u001", value=b"%d" % i), pb.PutResponse, timeout=3)
head = R(pb.RangeRequest(key=b"x")).header.revision  # compact to the newest: rev + 1 is now older than that
unary(ch, "/etcdserverpb.KV/Compact", pb.CompactionRequest(revision=head), pb.CompactionResponse, timeout=3)
reqs = queue.Queue(); q = queue.Queue()
reqs.put(pb.WatchRequest(create_request=pb.WatchCreateRequest(key=P, range_end=END, start_revision=rev + 1)))
threading.Thread(target=watcher, args=(ch, rev + 1), daemon=True).start()
while True:
    try:
        m = q.get(timeout=2)
    except queue.Empty:
        break
    if isinstance(m, Exception):
        print("watch stream ended:", m.code()); break
    print("watch at compacted rev: created=%s canceled=%s compact_revision=%d reason=%r" % (m.created, m.canceled, m.compact_revision, m.cancel_reason))
reqs.put(None)
try:
    R(pb.RangeRequest(key=P, range_end=END, revision=rev))
except grpc.RpcError as e:
    print("range at compacted revision:", e.code(), e.details())
# 7. lease: grant, attach, keepalive stream, revoke deletes the key
L = unary(ch, "/etcdserverpb.Lease/LeaseGrant", pb.LeaseGrantRequest(TTL=5), pb.LeaseGrantResponse, timeout=3)
unary(ch, "/etcdserverpb.KV/Put", pb.PutRequest(key=P + b"live/a", value=b"3", lease=L.ID), pb.PutResponse, timeout=3)
ka = ch.stream_stream("/etcdserverpb.Lease/LeaseKeepAlive", request_serializer=lambda m: m.SerializeToString(),
                      response_deserializer=pb.LeaseKeepAliveResponse.FromString)(iter([pb.LeaseKeepAliveRequest(ID=L.ID)]))
print("lease %x granted TTL %d; keepalive -> TTL %d" % (L.ID, L.TTL, next(ka).TTL))
unary(ch, "/etcdserverpb.Lease/LeaseRevoke", pb.LeaseRevokeRequest(ID=L.ID), pb.LeaseRevokeResponse, timeout=3)
print("after revoke, key count:", R(pb.RangeRequest(key=P + b"live/a", count_only=True)).count)
# 8. request too large
try:
    unary(ch, "/etcdserverpb.KV/Put", pb.PutRequest(key=P + b"big", value=b"a" * (1536 * 1024 + 1)), pb.PutResponse, timeout=3)
except grpc.RpcError as e:
    print("put of 1.5 MiB + 1:", e.code(), e.details())
unary(ch, "/etcdserverpb.KV/DeleteRange", pb.DeleteRangeRequest(key=P, range_end=END), pb.DeleteRangeResponse, timeout=3)
# 9. Status of every member
for e in eps:
    s = unary(grpc.insecure_channel(e), "/etcdserverpb.Maintenance/Status", pb.StatusRequest(), pb.StatusResponse, timeout=3)
    print("status %s: version %s leader %x member %x raftTerm %d" % (e, s.version, s.leader, s.header.member_id, s.raftTerm))
