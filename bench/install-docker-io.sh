#!/bin/sh
# Install Debian's docker.io (dockerd 20.10) for the Docker benchmark, and nothing more.
#
# The benchmark starts its own dockerd on a private socket and data root, so
# the system one must never start: on a machine without systemd the
# package's postinst would start it through invoke-rc.d.  A policy-rc.d that
# exits 101 forbids that for the install (any policy-rc.d already there is
# put back after).  Afterwards no dockerd may run that did not run before,
# and no docker0 bridge may exist that did not exist before.
set -eu

if dpkg -s docker.io >/dev/null 2>&1; then
	exit 0
fi
echo "installing Debian packages: docker.io (for make bench)"
policy=/usr/sbin/policy-rc.d
saved="$policy.bench-saved.$$"
before=$(pgrep -x dockerd || true)
bridge_before=$(ip link show docker0 >/dev/null 2>&1 && echo yes || echo no)

restore() {
	rm -f "$policy"
	if [ -e "$saved" ]; then mv "$saved" "$policy"; fi
}
if [ -e "$policy" ]; then mv "$policy" "$saved"; fi
trap restore EXIT INT TERM
printf '#!/bin/sh\n# written by bench/install-docker-io.sh for the install only\nexit 101\n' >"$policy"
chmod 755 "$policy"

export DEBIAN_FRONTEND=noninteractive RUNLEVEL=1
apt-get update -qq
apt-get install -y -qq --no-install-recommends docker.io

after=$(pgrep -x dockerd || true)
if [ "$after" != "$before" ]; then
	echo "installing docker.io started a dockerd (pids: $after); stop it: the benchmark runs its own" >&2
	exit 1
fi
if [ "$bridge_before" = no ] && ip link show docker0 >/dev/null 2>&1; then
	echo "installing docker.io added a docker0 bridge; remove it: the benchmark runs dockerd with --bridge=none" >&2
	exit 1
fi
