"""containerd's v1 wire contract: the .proto files here and their generated modules."""
