"""The classic builder (``docker build`` with DOCKER_BUILDKIT=0): Dockerfile to image over containerd."""

from __future__ import annotations
