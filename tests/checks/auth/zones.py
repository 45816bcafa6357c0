"""Test data served by nsd: the ``test.`` zone, ``psdtest.`` and PTR records.

Every domain lives in the ``test.`` zone, and ``psdtest.`` carries a public
suffix operator's DMARC record. The 127.0.0.0/24 reverse zone contains the
PTR records of the sending IPs 127.0.0.10-14, and the 2001:db8::/32 reverse
zone the PTR of 2001:db8::25.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.servers.nsd import zone_text

GOOD_IP = "127.0.0.10"
UNCONFIRMED_IP = "127.0.0.11"
NO_PTR_IP = "127.0.0.12"
GENERIC_IP = "127.0.0.13"
TWO_PTR_IP = "127.0.0.14"
# IPv6 sending address in the documentation prefix 2001:db8::/32.
GOOD_IPV6 = "2001:db8::25"
IPV6_REVERSE_ZONE = "8.b.d.0.1.0.0.2.ip6.arpa"
# TXT character-strings hold at most 255 bytes; longer values are split.
TXT_CHUNK = 250


@dataclass(frozen=True)
class DkimKeys:
    """Base64 ``p=`` values generated for this test session."""

    rsa1024: str
    rsa2048: str
    rsa512: str
    ed25519: str


def _rsa_p(bits: int) -> str:
    if bits < 1024:
        # cryptography refuses to generate keys this small; a public key
        # needs only an odd modulus of the right size.
        modulus = (1 << (bits - 1)) | secrets.randbits(bits - 1) | 1
        public = rsa.RSAPublicNumbers(65537, modulus).public_key()
    else:
        public = rsa.generate_private_key(65537, bits).public_key()
    der = public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def txt(value: str) -> str:
    """Return ``value`` as zone-file TXT data, split into strings of 250 bytes."""
    chunks = [value[i : i + TXT_CHUNK] for i in range(0, len(value), TXT_CHUNK)]
    return "TXT " + " ".join(f'"{chunk}"' for chunk in chunks)


def _spf_zone() -> str:
    many = " ".join(f"include:i{n}.many.test" for n in range(1, 12))
    nearly = " ".join(f"include:i{n}.many.test" for n in range(1, 9))
    big = " ".join(f"ip4:192.0.2.{n}" for n in range(1, 40))
    includes = "\n".join(
        f'i{n}.many TXT "v=spf1 ip4:192.0.2.{n} -all"' for n in range(1, 12)
    )
    return f"""
good TXT "v=spf1 ip4:{GOOD_IP} ip6:2001:db8::/64 include:_spf.good.test -all"
good TXT "google-site-verification=abc"
_spf.good TXT "v=spf1 a:mail2.good.test ~all"
mail2.good A 127.0.0.20
split TXT "v=spf1 ip4:127.0." "0.10 -all"
many {txt(f"v=spf1 {many} -all")}
nearly {txt(f"v=spf1 {nearly} ip4:{GOOD_IP} -all")}
{includes}
loop TXT "v=spf1 include:loop2.test -all"
loop2 TXT "v=spf1 include:loop.test -all"
void TXT "v=spf1 a:nx1.void.test a:nx2.void.test a:nx3.void.test ip4:{GOOD_IP} -all"
passall TXT "v=spf1 +all"
neutral TXT "v=spf1 ip4:{GOOD_IP} ?all"
noall TXT "v=spf1 ip4:{GOOD_IP}"
ptr TXT "v=spf1 ptr -all"
twospf TXT "v=spf1 ip4:{GOOD_IP} -all"
twospf TXT "v=spf1 -all"
nospf TXT "just some text"
missinc TXT "v=spf1 include:nothere.test -all"
badsyntax TXT "v=spf1 ip4:{GOOD_IP} mx:: foo -all"
big {txt(f"v=spf1 {big} ip4:{GOOD_IP} -all")}
other TXT "v=spf1 ip4:192.0.2.1 -all"
macro TXT "v=spf1 exists:%{{i}}.ok.macro.test -all"
mxspf TXT "v=spf1 mx:good.test -all"
ptrspf TXT "v=spf1 ptr:good.test -all"
{GOOD_IP}.ok.macro A 127.0.0.2
"""


def _dkim_zone(keys: DkimKeys) -> str:
    return f"""
s2048._domainkey.good {txt(f"v=DKIM1; k=rsa; p={keys.rsa2048}")}
s1024._domainkey.good {txt(f"v=DKIM1; k=rsa; p={keys.rsa1024}")}
s512._domainkey.good {txt(f"v=DKIM1; k=rsa; p={keys.rsa512}")}
ed._domainkey.good {txt(f"v=DKIM1; k=ed25519; p={keys.ed25519}")}
old._domainkey.good TXT "v=DKIM1; k=rsa; p="
testing._domainkey.good {txt(f"v=DKIM1; t=y; h=sha1; p={keys.rsa2048}")}
garbage._domainkey.good TXT "v=DKIM1; p=bm90IGEga2V5"
late._domainkey.good {txt(f"k=rsa; v=DKIM1; p={keys.rsa2048}")}
esp._domainkey.good CNAME key.esp.test.
key.esp {txt(f"v=DKIM1; p={keys.rsa2048}")}
"""


def _dmarc_zone() -> str:
    return """
_dmarc.good TXT "v=DMARC1; p=reject; rua=mailto:d@good.test,mailto:agg@reports.test"
good.test._report._dmarc.reports TXT "v=DMARC1"
reports MX 10 mail.good.test.
_dmarc.unauth TXT "v=DMARC1; p=quarantine; rua=mailto:agg@other.test"
other A 127.0.0.30
_dmarc.mid.good TXT "v=DMARC1; p=none"
_dmarc.twodmarc TXT "v=DMARC1; p=reject"
_dmarc.twodmarc TXT "v=DMARC1; p=none"
twodmarc A 127.0.0.30
_dmarc.pct0 TXT "v=DMARC1; p=reject; pct=0"
_dmarc.casebad TXT "v=dmarc1; p=reject"
_dmarc.spaced TXT "V = DMARC1 ; p = quarantine ; sp = reject"
_dmarc.subnone TXT "v=DMARC1; p=reject; sp=none"
_dmarc.strict TXT "v=DMARC1; p=reject; adkim=s; aspf=s"
_dmarc.relaxed TXT "v=DMARC1; p=reject; adkim=r; aspf=r"
_dmarc.mixed TXT "v=DMARC1; p=quarantine; adkim=s; aspf=r"
_dmarc.badmode TXT "v=DMARC1; p=reject; adkim=x"
"""


def _mx_zone() -> str:
    return f"""
good MX 10 mail.good.test.
mail.good A {GOOD_IP}
mail6.good AAAA {GOOD_IPV6}
implicit A 127.0.0.30
nullmx MX 0 .
ipmx MX 10 127.0.0.10.
cnamemx MX 10 alias.cnamemx.test.
alias.cnamemx CNAME mail.good.test.
deadmx MX 10 nowhere.deadmx.test.
liar.good A 127.0.0.99
127-0-0-13.dyn.good A {GENERIC_IP}
a.multi.good A {TWO_PTR_IP}
b.multi.good A {TWO_PTR_IP}
_mta-sts.good TXT "v=STSv1; id=20260101T0000"
_smtp._tls.good TXT "v=TLSRPTv1; rua=mailto:tls@good.test"
default._bimi.good TXT "v=BIMI1; l=https://good.test/logo.svg; a="
_mta-sts.badid TXT "v=STSv1; id=not-alnum!"
_mta-sts.crlf TXT "v=STSv1; id=a1"
crlf MX 10 mx1.crlf.test.
mx1.crlf A {GOOD_IP}
_mta-sts.moved TXT "v=STSv1; id=a1"
_mta-sts.mismatch TXT "v=STSv1; id=a1"
mismatch MX 10 mail.good.test.
_mta-sts.html TXT "v=STSv1; id=a1"
_mta-sts.testmode TXT "v=STSv1; id=a1"
clean TXT "v=spf1 ip4:{GOOD_IP} -all"
_dmarc.clean TXT "v=DMARC1; p=reject"
clean MX 10 mail.good.test.
_smtp._tls.badrpt TXT "v=TLSRPTv1; rua=ftp://reports.test/"
default._bimi.mid.good TXT "v=BIMI1; l=https://good.test/logo.svg"
default._bimi.declined TXT "v=BIMI1; l=; a="
_mta-sts.twosts TXT "v=STSv1; id=a1"
_mta-sts.twosts TXT "v=STSv1; id=b2"
"""


def _reverse_zone() -> str:
    return """
10 PTR mail.good.test.
11 PTR liar.good.test.
13 PTR 127-0-0-13.dyn.good.test.
14 PTR a.multi.good.test.
14 PTR b.multi.good.test.
"""


def generate_keys() -> DkimKeys:
    """Generate RSA keys of 512, 1024 and 2048 bits and an Ed25519 key."""
    raw = ed25519.Ed25519PrivateKey.generate().public_key()
    ed = raw.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return DkimKeys(
        rsa1024=_rsa_p(1024),
        rsa2048=_rsa_p(2048),
        rsa512=_rsa_p(512),
        ed25519=base64.b64encode(ed).decode(),
    )


def zone_files(keys: DkimKeys) -> dict[str, str]:
    """Return the zone files nsd serves, by zone name."""
    body = _spf_zone() + _dkim_zone(keys) + _dmarc_zone() + _mx_zone()
    return {
        "test": zone_text("test", body),
        "psdtest": zone_text(
            "psdtest", '_dmarc TXT "v=DMARC1; p=quarantine; psd=y"\nshop A 127.0.0.30'
        ),
        "0.0.127.in-addr.arpa": zone_text("0.0.127.in-addr.arpa", _reverse_zone()),
        IPV6_REVERSE_ZONE: zone_text(
            IPV6_REVERSE_ZONE,
            "5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0 PTR mail6.good.test.",
        ),
    }
