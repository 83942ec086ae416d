"""containerd's v1 wire contract: the .proto files here, their generated modules, and ``convert`` between them and core records."""
