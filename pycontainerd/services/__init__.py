"""gRPC adapters: one module per containerd v1 service, each a thin layer over a core store.

``rpc`` holds what they share: the call's namespace and lease, offloading of
blocking work, and the single place where errors become gRPC statuses.
"""
