#!/usr/bin/python3
"""Writes the odd-case corpus of the message library (tests/data/mail/corpus/*.eml).

Each case is small and targets one place where parsers disagree: line ends, boundaries, encoded words,
RFC 2231 parameters, 8-bit headers, nesting. The differential test (mail_gmime_diff_test) parses every
file with Magpie and with GMime; the bench parses them too. Run: /usr/bin/python3 generate.py
"""
import base64
import os

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus")


def crlf(text):
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("latin-1")


def utf8(text):
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


CASES = {}

CASES["plain"] = crlf("""From: Alice <alice@example.com>
To: Bob <bob@example.net>
Subject: Hello
Date: Fri, 21 Nov 1997 09:55:06 -0600
Message-ID: <1@example.com>

Hi Bob.
""")

CASES["rfc2046_preamble_epilogue"] = crlf("""From: Nathaniel Borenstein <nsb@bellcore.com>
To: Ned Freed <ned@innosoft.com>
Subject: Sample message
MIME-Version: 1.0
Content-type: multipart/mixed; boundary="simple boundary"

This is the preamble.

--simple boundary

This is implicitly typed plain US-ASCII text.
It does NOT end with a linebreak.
--simple boundary
Content-type: text/plain; charset=us-ascii

This is explicitly typed plain US-ASCII text.
It DOES end with a linebreak.

--simple boundary--

This is the epilogue.
""")

CASES["alternative_in_mixed"] = crlf("""From: a@example.com
To: b@example.com
Subject: alt
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="=_outer"

--=_outer
Content-Type: multipart/alternative; boundary="=_outer_inner"

--=_outer_inner
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

caf=C3=A9 with a soft=
 break
--=_outer_inner
Content-Type: text/html; charset=utf-8

<p>caf\xc3\xa9</p>
--=_outer_inner--

--=_outer
Content-Type: application/octet-stream; name="data.bin"
Content-Disposition: attachment; filename="data.bin"
Content-Transfer-Encoding: base64

""" + base64.encodebytes(bytes(range(256))).decode() + """--=_outer--
""")

CASES["message_rfc822"] = crlf("""From: fwd@example.com
Subject: Fwd: inner
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=b1

--b1
Content-Type: text/plain

See attached.
--b1
Content-Type: message/rfc822

From: Inner Person <inner@example.org>
To: x@example.org
Subject: =?utf-8?q?inner_subj=C3=A9ct?=
Content-Type: multipart/alternative; boundary=b2

--b2
Content-Type: text/plain

inner text
--b2--
--b1--
""")

CASES["missing_close_boundary"] = crlf("""Subject: unclosed
Content-Type: multipart/mixed; boundary=zz

--zz
Content-Type: text/plain

one
--zz
Content-Type: text/plain

two, and no closing boundary
""")

CASES["bare_lf"] = b"Subject: bare\nContent-Type: multipart/mixed; boundary=q\n\n--q\nContent-Type: text/plain\n\nlf only\n--q--\n"

CASES["encoded_words"] = crlf("""From: =?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?= <keld@dkuug.dk>
To: =?US-ASCII?Q?Keith_Moore?= <moore@cs.utk.edu>
Cc: =?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>
Subject: =?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?=
 =?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?=

body
""")

CASES["encoded_split_multibyte"] = crlf("""From: x@example.com
Subject: =?UTF-8?B?w6E=?= =?UTF-8?Q?=C3?= =?UTF-8?Q?=A9?= tail

body
""")

CASES["rfc2231_filename"] = crlf("""Subject: 2231
Content-Type: multipart/mixed; boundary=p

--p
Content-Type: application/octet-stream;
 name*0*=UTF-8''%E6%97%A5%E6%9C%AC;
 name*1*=%E8%AA%9E.txt
Content-Disposition: attachment;
 filename*0*=UTF-8''%E6%97%A5%E6%9C%AC;
 filename*1*=%E8%AA%9E.txt
Content-Transfer-Encoding: base64

aGVsbG8=
--p--
""")

CASES["utf8_headers"] = utf8("""From: Jörg Müller <jörg@müller.example>
To: 张三 <zhang@例子.测试>
Subject: Grüße aus Köln
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Grüße
""")

CASES["latin1_headers"] = crlf("""From: Andr\xe9 <andre@example.fr>
Subject: caf\xe9
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: 8bit

caf\xe9
""")

CASES["header_only"] = b"Subject: nothing else\r\nFrom: a@b.example"

CASES["boundary_trailing_space"] = crlf("""Subject: padding
Content-Type: multipart/mixed; boundary="sp"

--sp   
Content-Type: text/plain

padded delimiter
--sp--\t
""")

CASES["qp_latin1"] = crlf("""Subject: qp
Content-Type: text/plain; charset=ISO-8859-1
Content-Transfer-Encoding: quoted-printable

Caf=E9 cr=E8me br=FBl=E9e, a very long line that is wrapped with a soft=
 line break, trailing=20
=3D sign and a bad =ZZ escape.
""")

CASES["base64_junk"] = crlf("""Subject: b64
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

SGVs bG8g
d29y!bGQ=

""")

CASES["digest"] = crlf("""Subject: digest
Content-Type: multipart/digest; boundary=d

--d

From: one@example.com
Subject: first

first body
--d

From: two@example.com
Subject: second

second body
--d--
""")

CASES["groups_obsolete"] = crlf("""From: Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>
To: A Group(Some people)
     :Chris Jones <c@(Chris's host.)public.example>,
         joe@example.org,
  John <jdoe@one.test> (my dear friend); (the end of the group)
Cc:(Empty list)(start)Hidden recipients  :(nobody(that I know))  ;
Reply-To: Mary Smith <@node.test:mary@example.net>, , jdoe@test  . example
Subject: obsolete
Date: Thu,
      13
        Feb
          1969
      23:32
               -0330 (Newfoundland Time)

body
""")

nested = "Subject: deep\r\nContent-Type: multipart/mixed; boundary=L0\r\n\r\n"
for level in range(1, 10):
    nested += "--L%d\r\nContent-Type: multipart/mixed; boundary=L%d\r\n\r\n" % (level - 1, level)
nested += "--L9\r\nContent-Type: text/plain\r\n\r\nbottom\r\n--L9--\r\n"
for level in range(8, -1, -1):
    nested += "--L%d--\r\n" % level
CASES["deep_nesting"] = nested.encode()

CASES["message_global"] = utf8("""Subject: global
Content-Type: multipart/mixed; boundary=g

--g
Content-Type: message/global

From: Jörg <jörg@example.de>
Subject: Grüße

innen
--g--
""")

CASES["multipart_no_boundary"] = crlf("""Subject: no boundary
Content-Type: multipart/mixed

--whatever
Content-Type: text/plain

text
--whatever--
""")

CASES["odd_content_type"] = crlf("""Subject: odd ct
Content-Type: Multipart/MIXED (comment) ; BOUNDARY = "x y" ; foo=bar

--x y
Content-Type: TEXT/Plain ; Charset = "UTF-8" (a comment)

first
--x y
Content-Type: text

no subtype
--x y--
""")

CASES["iso2022jp"] = crlf("""From: =?ISO-2022-JP?B?GyRCJUYlOSVIGyhC?= <t@example.jp>
Subject: =?ISO-2022-JP?B?GyRCJEYkOSRIGyhC?=
Content-Type: text/plain; charset=ISO-2022-JP
Content-Transfer-Encoding: 7bit

\x1b$B$F$9$H\x1b(B
""")

CASES["empty_parts"] = crlf("""Subject: empties
Content-Type: multipart/mixed; boundary=e

--e
--e

--e
Content-Type: text/plain

--e--
""")

CASES["boundary_prefix"] = crlf("""Subject: prefix
Content-Type: multipart/mixed; boundary="abc"

--abc
Content-Type: multipart/alternative; boundary="abcdef"

--abcdef
Content-Type: text/plain

inner
--abcdef--
--abc
Content-Type: text/plain

second
--abc--
""")

CASES["folded_long_header"] = crlf("""Subject: a subject that is
 folded over
\tthree lines
X-Empty:
X-Spaces:    \t
References: <a@x>
 <b@x>
\t<c@x>
In-Reply-To: "phrase" <c@x>

body
""")

CASES["no_mime_version_8bit"] = crlf("""Subject: \xe4\xf6\xfc
From: \xc4nne <anne@example.com>

\xe4\xf6\xfc raw latin-1 body without charset
""")

CASES["encoded_word_glued"] = crlf("""From: "=?utf-8?q?Andr=C3=A9?=" <andre@example.com>
To: =?utf-8?q?Z=C3=BC?=rich <z@example.com>
Subject: pre=?utf-8?q?fix?= =?utf-8?b?w6k=?=end =?unknown-charset?q?x?= =?utf-8?q?bad=ZZ?=

body
""")

CASES["transfer_encoding_variants"] = crlf("""Subject: cte
Content-Type: multipart/mixed; boundary=t

--t
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: Base64

w6kgbm8gcGFkZGluZw
--t
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: QUOTED-PRINTABLE

lower =c3=a9 hex and a trailing soft break=
--t
Content-Type: message/rfc822
Content-Transfer-Encoding: base64

U3ViamVjdDogaW5uZXINCg0KYm9keQ0K
--t
Content-Type: application/octet-stream
Content-Transfer-Encoding: x-uuencode

begin 644 x
--t--
""")

CASES["dates_and_ids"] = crlf("""Date: 1 Jan 2024 00:00 +0100
Message-ID: <id.1@example.com> (comment)
In-Reply-To: <a@b> <c@d>
References: <a@b>
	<c@d>
Subject: dates

x
""")

CASES["long_lines"] = crlf("Subject: " + "x" * 5000 + "\nX-Long: " + " ".join(["word"] * 800) + "\n\n" + "y" * 20000 + "\n")

CASES["nul_and_controls"] = b"Subject: nul\x00inside\r\nX-Ctl: \x01\x02\r\nContent-Type: text/plain\r\n\r\nbody\x00with nul\r\n"

CASES["mixed_line_ends"] = b"Subject: mixed\r\nContent-Type: multipart/mixed; boundary=m\n\r\n--m\r\nContent-Type: text/plain\n\none\n--m\r\n\r\ntwo\r\n--m--\n"

CASES["attachment_names"] = crlf("""Subject: names
Content-Type: multipart/mixed; boundary=n

--n
Content-Type: application/octet-stream; name="=?UTF-8?B?w6kudHh0?="
Content-Disposition: attachment

AA==
--n
Content-Type: application/octet-stream; name=plain.txt
Content-Disposition: attachment; filename*=iso-8859-1'fr'caf%E9.txt

AA==
--n
Content-Type: application/octet-stream
Content-Disposition: attachment; filename="with \\"quotes\\".txt"

AA==
--n--
""")

CASES["junk_header_line"] = crlf("""Subject: junk
X-First: 1
this line is not a header field
X-Second: 2

body
""")

CASES["continuation_first"] = crlf(""" leading continuation
Subject: after a leading fold
From: a@example.com

body
""")

CASES["nested_same_boundary"] = crlf("""Subject: same boundary twice
Content-Type: multipart/mixed; boundary=same

--same
Content-Type: multipart/alternative; boundary=same

--same
Content-Type: text/plain

inner?
--same--
--same--
""")

CASES["whitespace_only_line"] = b"Subject: ws\r\nFrom: a@example.com\r\n \r\nX-After: 1\r\n\r\nbody\r\n"

CASES["qp_soft_break_trailing_space"] = crlf("""Subject: qp spaces
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

soft break with trailing space=   
next line  
end=
""")

CASES["duplicate_content_type"] = crlf("""Subject: two content types
Content-Type: text/plain; charset=utf-8
Content-Type: text/html; charset=iso-8859-1

<p>which one?</p>
""")

CASES["encoding_on_multipart"] = crlf("""Subject: cte on multipart
Content-Type: multipart/mixed; boundary=c
Content-Transfer-Encoding: base64

--c
Content-Type: text/plain

not base64 at all
--c--
""")

CASES["unknown_charset_text"] = crlf("""Subject: =?x-unknown?q?caf=E9?=
Content-Type: text/plain; charset=x-unknown
Content-Transfer-Encoding: 8bit

caf\xe9
""")


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in CASES.items():
        with open(os.path.join(OUT, name + ".eml"), "wb") as f:
            f.write(data)
    print("wrote %d messages to %s" % (len(CASES), OUT))


if __name__ == "__main__":
    main()
