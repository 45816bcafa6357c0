#!/usr/bin/env bash
# Install the Debian packages of the servers the tests start, when missing.
#
# The tests run private instances on 127.0.0.1 high ports; the packages'
# own system daemons are kept from starting during the install.
set -euo pipefail

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

needed=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
have dovecot || needed+=(dovecot-imapd dovecot-lmtpd)
have postfix || needed+=(postfix)
have rbldnsd || needed+=(rbldnsd)
have nsd || needed+=(nsd)
have unbound || needed+=(unbound)
have dig || needed+=(bind9-dnsutils)
have openssl || needed+=(openssl)
have promtool || needed+=(prometheus)
have faketime || needed+=(faketime)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || needed+=(postgresql)

if [ ${#needed[@]} -eq 0 ]; then
    exit 0
fi

echo "installing Debian packages: ${needed[*]}" >&2
echo "postfix postfix/main_mailer_type select No configuration" \
    | as_root debconf-set-selections
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod 755 /usr/sbin/policy-rc.d
    created_policy=1
fi
as_root apt-get update -q >/dev/null
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends "${needed[@]}" >/dev/null
if [ "$created_policy" -eq 1 ]; then
    as_root rm -f /usr/sbin/policy-rc.d
fi
