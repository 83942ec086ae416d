"""Image archives as ``docker save`` writes and ``docker load`` reads them.

:mod:`.save` plans and streams an OCI image layout with Docker's
``manifest.json``; :mod:`.load` reads one (or the older Docker archive with
``<id>/layer.tar``) from a stream of any size, trusting nothing in it.
"""
