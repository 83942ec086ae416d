"""End-to-end tests of the pycontainerd daemon: lifecycle, config, services, and Debian's ctr against it."""
