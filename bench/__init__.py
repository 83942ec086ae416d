"""Side-by-side benchmarks of pycontainerd and Debian's containerd.

``bench/run.py`` is the entry point (``make bench``).  The modules here are
its parts: :mod:`bench.daemons` starts and stops both daemons on private
roots, :mod:`bench.memory` reads their memory from ``/proc``,
:mod:`bench.workloads` drives them through ``ctr`` and the gRPC API, and
:mod:`bench.report` turns the numbers into JSON and a Markdown table.
:mod:`bench.engines` starts Debian's dockerd and pydockerd the same way,
and :mod:`bench.docker` times the docker CLI against both.
Nothing here is a test: it measures and reports, it never asserts.
"""
