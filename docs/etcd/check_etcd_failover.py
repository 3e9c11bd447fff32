#!/usr/bin/python3
"""Leader kill and quorum loss as a watcher sees them (etcd 3.4, Debian python3-grpcio 1.51 = the C core
that C++ uses). Usage: PYTHONPATH=OUT /usr/bin/python3 check_etcd_failover.py DIR  (DIR has m1..m3.pid, ports 2379N)"""
import os, signal, sys, threading, time, queue
import grpc
import etcd_v3_pb2 as pb

D = sys.argv[1]
EPS = ["127.0.0.1:2379%d" % i for i in (1, 2, 3)]
P = b"/sr-fail/"; END = b"/sr-fail0"
def unary(ch, path, req, typ, **kw):
    return ch.unary_unary(path, request_serializer=lambda m: m.SerializeToString(), response_deserializer=typ.FromString)(req, **kw)
def status(ep):
    return unary(grpc.insecure_channel(ep), "/etcdserverpb.Maintenance/Status", pb.StatusRequest(), pb.StatusResponse, timeout=1)
def pid(i): return int(open("%s/m%d.pid" % (D, i)).read())

def watch(target, start, q, md):
    ch = grpc.insecure_channel(target)
    def reqs():
        yield pb.WatchRequest(create_request=pb.WatchCreateRequest(key=P, range_end=END, start_revision=start))
        time.sleep(3600)
    try:
        for r in ch.stream_stream("/etcdserverpb.Watch/Watch", request_serializer=lambda m: m.SerializeToString(),
                                  response_deserializer=pb.WatchResponse.FromString)(reqs(), metadata=md):
            q.put((time.monotonic(), r))
    except grpc.RpcError as e:
        q.put((time.monotonic(), e))

leader_id = status(EPS[0]).leader
leader = [i for i in (1, 2, 3) if status(EPS[i - 1]).header.member_id == leader_id][0]
print("leader: m%d" % leader)
# A: a watch on one channel to the leader only; B: one channel over all three addresses (ipv4:a,b,c, pick_first)
qa, qb = queue.Queue(), queue.Queue()
head = unary(grpc.insecure_channel(EPS[leader - 1]), "/etcdserverpb.KV/Put", pb.PutRequest(key=P + b"k", value=b"0"), pb.PutResponse, timeout=2).header.revision
threading.Thread(target=watch, args=(EPS[leader - 1], head + 1, qa, [("hasleader", "true")]), daemon=True).start()
multi = "ipv4:" + ",".join([EPS[leader - 1]] + [e for e in EPS if e != EPS[leader - 1]])
threading.Thread(target=watch, args=(multi, head + 1, qb, [("hasleader", "true")]), daemon=True).start()
time.sleep(0.5)
t_kill = time.monotonic(); os.kill(pid(leader), signal.SIGKILL)
others = [e for e in EPS if e != EPS[leader - 1]]
wch = grpc.insecure_channel("ipv4:" + ",".join(others))
n = 0
while True:
    try:
        r = unary(wch, "/etcdserverpb.KV/Put", pb.PutRequest(key=P + b"k", value=b"1"), pb.PutResponse, timeout=0.3)
        break
    except grpc.RpcError as e:
        n += 1
print("put after kill -9 of the leader: ok %.2f s later at revision %d (%d failed tries)" % (time.monotonic() - t_kill, r.header.revision, n))
def drain(q, name):
    while True:
        try:
            t, m = q.get(timeout=2)
        except queue.Empty:
            print("  %s: nothing more" % name); return
        if isinstance(m, Exception):
            print("  %s: +%.2f s stream ended %s %s" % (name, t - t_kill, m.code(), m.details()))
        elif m.events:
            print("  %s: +%.2f s events %s" % (name, t - t_kill, [(e.kv.value, e.kv.mod_revision) for e in m.events]))
        else:
            print("  %s: +%.2f s created=%s" % (name, t - t_kill, m.created))
print("watch A (channel to the killed leader only):"); drain(qa, "A")
print("watch B (one channel ipv4:leader,other,other):"); drain(qb, "B")
# resume: a new watch on the multi-address channel from the last revision seen + 1 gets the write made meanwhile
qc = queue.Queue()
threading.Thread(target=watch, args=(multi, head + 1, qc, [("hasleader", "true")]), daemon=True).start()
print("watch B resumed from revision %d on the same target:" % (head + 1)); drain(qc, "B'")
# quorum loss: kill the two other members; the survivor cancels hasleader watches after 3 election timeouts
surv = [i for i in (1, 2, 3) if i != leader][0]
qd = queue.Queue()
threading.Thread(target=watch, args=(EPS[surv - 1], r.header.revision + 1, qd, [("hasleader", "true")]), daemon=True).start()
qe = queue.Queue()
threading.Thread(target=watch, args=(EPS[surv - 1], r.header.revision + 1, qe, []), daemon=True).start()
time.sleep(0.5)
t_kill = time.monotonic()
for i in (1, 2, 3):
    if i not in (leader, surv):
        os.kill(pid(i), signal.SIGKILL)
sc = grpc.insecure_channel(EPS[surv - 1])
for ser in (False, True):
    t0 = time.monotonic()
    try:
        rr = unary(sc, "/etcdserverpb.KV/Range", pb.RangeRequest(key=P, range_end=END, serializable=ser), pb.RangeResponse, timeout=3)
        print("quorum lost: Range serializable=%s -> %d keys in %.2f s" % (ser, len(rr.kvs), time.monotonic() - t0))
    except grpc.RpcError as e:
        print("quorum lost: Range serializable=%s -> %s %s after %.2f s" % (ser, e.code(), e.details(), time.monotonic() - t0))
t0 = time.monotonic()
try:
    unary(sc, "/etcdserverpb.KV/Put", pb.PutRequest(key=P + b"k", value=b"2"), pb.PutResponse, timeout=3)
except grpc.RpcError as e:
    print("quorum lost: Put -> %s %s after %.2f s" % (e.code(), e.details(), time.monotonic() - t0))
time.sleep(1)
print("watch on the survivor with hasleader=true:"); drain(qd, "D")
print("watch on the survivor without it:"); drain(qe, "E")
