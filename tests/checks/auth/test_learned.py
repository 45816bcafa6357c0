"""Learning our identifiers from our own mail quoted in real bounces."""

from __future__ import annotations

from pathlib import Path

from watchdog.checks.auth.learned import (
    MAX_LINKS_PER_MESSAGE,
    Learned,
    LearnedKind,
    learn_from_message,
    registered_domain,
)

# A Gmail bounce that quotes the original, signed with d=gmail.example.com
# s=20161025. Its own text links to support.google.com.
GSUITE = "emails/rhost-gsuite/rhost-gsuite-07.eml"
OURS = ["gmail.example.com"]


def _bounce(corpus_dir: Path, body: bytes = b"Nyaan") -> bytes:
    raw = (corpus_dir / GSUITE).read_bytes()
    return raw.replace(b"\nNyaan\n", b"\n" + body + b"\n")


def _kind(found: set[Learned], kind: LearnedKind) -> set[tuple[str, str]]:
    return {(item.domain, item.value) for item in found if item.kind is kind}


def test_real_bounce_selector(corpus_dir: Path) -> None:
    """The quoted DKIM-Signature gives our selector, X-Google-DKIM-Signature none."""
    found = learn_from_message(
        _bounce(corpus_dir), OURS, delivered_to_envelope_sender=True, links=True
    )
    assert _kind(found, LearnedKind.DKIM_SELECTOR) == {
        ("gmail.example.com", "20161025")
    }
    assert _kind(found, LearnedKind.DKIM_DOMAIN) == {
        ("gmail.example.com", "gmail.example.com")
    }


def test_real_bounce_return_path(corpus_dir: Path) -> None:
    """The bounce's Delivered-To is the envelope sender of our message."""
    found = learn_from_message(
        _bounce(corpus_dir), OURS, delivered_to_envelope_sender=True, links=False
    )
    assert _kind(found, LearnedKind.RETURN_PATH) == {
        ("gmail.example.com", "gmail.example.com")
    }


def test_report_recipient_not_return_path(corpus_dir: Path) -> None:
    """A feedback report is not sent to the envelope sender."""
    found = learn_from_message(
        _bounce(corpus_dir), OURS, delivered_to_envelope_sender=False, links=False
    )
    assert _kind(found, LearnedKind.RETURN_PATH) == set()


def test_quoted_return_path_header() -> None:
    """A Return-Path header in the quoted original is learned too."""
    raw = _report(b"Return-Path: <bounce+x=y@bounces.esp.example>\n")
    found = learn_from_message(
        raw, ["good.example"], delivered_to_envelope_sender=False, links=False
    )
    assert _kind(found, LearnedKind.RETURN_PATH) == {
        ("good.example", "bounces.esp.example")
    }


def test_links_only_from_our_message(corpus_dir: Path) -> None:
    """Links in our quoted body count; the bounce's own links do not."""
    body = (
        b"See https://Shop.Example.co.uk/offer?id=1 and http://user@t.news.example"
        b".net:8080/x and http://192.0.2.7/a and https://[2001:db8::1]/b"
    )
    found = learn_from_message(
        _bounce(corpus_dir, body), OURS, delivered_to_envelope_sender=True, links=True
    )
    assert _kind(found, LearnedKind.LINK_DOMAIN) == {
        ("gmail.example.com", "example.co.uk"),
        ("gmail.example.com", "example.net"),
    }


def test_links_off_by_default_flag(corpus_dir: Path) -> None:
    """links=False scans no body."""
    body = b"https://shop.example.org/"
    found = learn_from_message(
        _bounce(corpus_dir, body), OURS, delivered_to_envelope_sender=True, links=False
    )
    assert _kind(found, LearnedKind.LINK_DOMAIN) == set()


def test_link_count_bounded(corpus_dir: Path) -> None:
    """One message adds at most MAX_LINKS_PER_MESSAGE link domains."""
    body = b" ".join(b"https://www.d%d.example/" % n for n in range(500))
    found = learn_from_message(
        _bounce(corpus_dir, body), OURS, delivered_to_envelope_sender=True, links=True
    )
    assert len(_kind(found, LearnedKind.LINK_DOMAIN)) == MAX_LINKS_PER_MESSAGE


def test_forged_bounce_teaches_nothing(corpus_dir: Path) -> None:
    """A bounce quoting someone else's mail adds nothing for any domain."""
    body = b"https://shop.example.org/"
    found = learn_from_message(
        _bounce(corpus_dir, body),
        ["good.example"],
        delivered_to_envelope_sender=True,
        links=True,
    )
    assert found == set()


def test_foreign_signature_not_selector() -> None:
    """Our From with an ESP's signature: the ESP's selector is not ours,
    but its d= domain is recorded for alignment."""
    raw = _report(b"DKIM-Signature: v=1; d=esp.example; s=k1; bh=a; b=b\n")
    found = learn_from_message(
        raw, ["good.example"], delivered_to_envelope_sender=False, links=False
    )
    assert _kind(found, LearnedKind.DKIM_SELECTOR) == set()
    assert _kind(found, LearnedKind.DKIM_DOMAIN) == {("good.example", "esp.example")}


def test_our_signature_foreign_from() -> None:
    """Our d= on a foreign From makes the message ours for selectors only."""
    raw = _report(
        b"DKIM-Signature: v=1; d=mail.good.example; s=k2; bh=a; b=b\n",
        sender=b"someone@customer.example",
    )
    found = learn_from_message(
        raw, ["good.example"], delivered_to_envelope_sender=False, links=False
    )
    assert _kind(found, LearnedKind.DKIM_SELECTOR) == {("mail.good.example", "k2")}
    assert _kind(found, LearnedKind.DKIM_DOMAIN) == {
        ("customer.example", "mail.good.example")
    }


def test_invalid_tags_skipped() -> None:
    """Selectors and domains that are not DNS names are not learned."""
    raw = _report(
        b"DKIM-Signature: v=1; d=good.example; s=bad selector; bh=a; b=b\n"
        b"DKIM-Signature: v=1; d=good..example; s=k3; bh=a; b=b\n"
    )
    found = learn_from_message(
        raw, ["good.example"], delivered_to_envelope_sender=False, links=False
    )
    assert _kind(found, LearnedKind.DKIM_SELECTOR) == set()


def test_no_domains_learns_nothing(corpus_dir: Path) -> None:
    """Without sending domains nothing is ours."""
    found = learn_from_message(
        _bounce(corpus_dir), [], delivered_to_envelope_sender=True, links=True
    )
    assert found == set()


def test_registered_domain() -> None:
    """URL hosts reduce to the registered domain; suffixes and IPs to None."""
    cases = {
        "a.b.example.com": "example.com",
        "www.example.co.uk": "example.co.uk",
        "EXAMPLE.com:443": "example.com",
        "co.uk": None,
        "10.0.0.1": None,
        "[::1]": None,
        "bad_host..x": None,
    }
    for host, expected in cases.items():
        assert registered_domain(host) == expected, host


def _report(headers: bytes, sender: bytes = b"news@good.example") -> bytes:
    return (
        b"From: MAILER-DAEMON@mx.receiver.example\n"
        b"To: fbl@good.example\n"
        b"MIME-Version: 1.0\n"
        b'Content-Type: multipart/report; report-type=feedback-report; boundary="B"\n'
        b"\n--B\nContent-Type: text/plain\n\nreport\n"
        b"--B\nContent-Type: message/rfc822\n\n"
        + headers
        + b"From: "
        + sender
        + b"\nTo: user@receiver.example\nSubject: hi\n\nbody\n--B--\n"
    )
