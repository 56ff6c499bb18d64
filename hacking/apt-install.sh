#!/usr/bin/env bash
# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# apt-install.sh BINDEP [PROFILE] [-- SERVICE...]: install the Debian packages bindep lists as
# missing (for PROFILE, or the default one), starting no host-wide service, then disable each
# SERVICE the install enabled. One guard for `make apt` and `make bench-apt`.
#
# Why: the lab runs its own sshd, Samba and firewalld inside its nodes and the benchmarks their own
# nginx and iperf3; a host-wide firewalld would take over the host's firewall. invoke-rc.d and
# deb-systemd-invoke ask policy-rc.d before starting anything: ours refuses every start for the
# length of the install (a policy-rc.d the machine already has stays as it is). A unit that a
# postinst enabled is disabled again, so a systemd host does not start it at its next boot either.
set -euo pipefail

bindep=$1; shift
profile=()
if [ $# -gt 0 ] && [ "$1" != "--" ]; then profile=("$1"); shift; fi
[ "${1:-}" != "--" ] || shift
services=("$@")

missing=$("$bindep" -b "${profile[@]}" 2>/dev/null | tr '\n' ' ' || true)
[ -n "${missing// }" ] || exit 0

policy=/usr/sbin/policy-rc.d
ours=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# fleet.firmware hacking/apt-install.sh, for the install only: start no service\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    ours=1
fi
echo "apt-get install (no service started): $missing"
rc=0
# Several checkouts may install at once (parallel labs): wait for dpkg's lock instead of failing.
{ apt-get -o DPkg::Lock::Timeout=600 update -qq &&
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $missing; } || rc=$?
[ -z "$ours" ] || rm -f "$policy"
for service in "${services[@]}"; do
    case " $missing " in *" $service "*) ;; *) continue;; esac
    DPKG_MAINTSCRIPT_PACKAGE=$service deb-systemd-helper disable "$service.service" >/dev/null 2>&1 || true
    if [ -x "/etc/init.d/$service" ]; then update-rc.d "$service" disable >/dev/null 2>&1 || true; fi
done
exit $rc
