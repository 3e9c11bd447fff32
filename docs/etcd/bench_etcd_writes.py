#!/usr/bin/python3
"""A rough write rate of a 3-member loopback etcd (Debian python3-grpcio; a few seconds each).
Usage: PYTHONPATH=OUT /usr/bin/python3 bench_etcd_writes.py EP SECONDS"""
import sys, time, threading, json
import grpc
import etcd_v3_pb2 as pb
ep, secs = sys.argv[1], float(sys.argv[2])
ch = grpc.insecure_channel(ep)
put = ch.unary_unary("/etcdserverpb.KV/Put", request_serializer=lambda m: m.SerializeToString(), response_deserializer=pb.PutResponse.FromString)
txn = ch.unary_unary("/etcdserverpb.KV/Txn", request_serializer=lambda m: m.SerializeToString(), response_deserializer=pb.TxnResponse.FromString)
val = json.dumps({"bytes_up": 123456789, "bytes_down": 987654321, "tcp_connections": 12345, "udp_packets": 6789}).encode()
def run(threads, fn):
    n = [0] * threads; stop = time.monotonic() + secs
    def w(t):
        while time.monotonic() < stop:
            fn(t, n[t]); n[t] += 1
    ts = [threading.Thread(target=w, args=(t,)) for t in range(threads)]
    [x.start() for x in ts]; [x.join() for x in ts]
    return sum(n) / secs
for threads in (1, 8):
    r = run(threads, lambda t, i: put(pb.PutRequest(key=b"/bench/p/%d/%d" % (t, i % 1000), value=val), timeout=5))
    print("Put, %d client thread(s): %.0f puts/s" % (threads, r))
for threads in (1, 4):
    ops = lambda t, i: [pb.RequestOp(request_put=pb.PutRequest(key=b"/bench/t/%d/%d" % (t, (i * 128 + k) % 10000), value=val)) for k in range(128)]
    r = run(threads, lambda t, i: txn(pb.TxnRequest(success=ops(t, i)), timeout=5))
    print("Txn of 128 puts, %d client thread(s): %.0f txn/s = %.0f key writes/s" % (threads, r, r * 128))
ch.unary_unary("/etcdserverpb.KV/DeleteRange", request_serializer=lambda m: m.SerializeToString(), response_deserializer=pb.DeleteRangeResponse.FromString)(pb.DeleteRangeRequest(key=b"/bench/", range_end=b"/bench0"), timeout=10)
