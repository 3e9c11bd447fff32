#!/usr/bin/perl -0p
# Strips gogoproto and grpc-gateway annotations from etcd's .proto files so that plain protoc compiles them.
s/^import "gogoproto\/gogo.proto";\n//mg;
s/^import "google\/api\/annotations.proto";\n//mg;
s/^option \(gogoproto\.[^\n]*\n//mg;
s/\[\(gogoproto\.[^\]]*\]//g;
s/\s*option \(google\.api\.http\) = (\{(?:[^{}]++|(?1))*\});\s*//sg;
