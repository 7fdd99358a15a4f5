#!/usr/bin/python3
"""How long the webmail takes to show the first page of a large INBOX (issue 15: "the inbox of a
10,000-message mailbox shows its first page in well under a second").

Fills alice's INBOX with N messages, over SMTP (parallel sessions) or, with --fill store, straight into the
stopped store (tests/tools/magpie_fill_mailbox: one Email and thread per message), then in headless Chromium
measures, several times: a navigation to the app with a live session cookie until the first rows are on
screen (the browser's own clock: navigation start to the app's "magpie:first-page" User Timing mark),
sign-in click to the first row painted, and a click on INBOX (a fresh Email/query + Email/get + Thread/get)
to the first row painted. Prints medians; asserts nothing (tests never assert timings).

  MAGPIE_BUILD_DIR=build-release /usr/bin/python3 bench/webmail_first_page.py --messages 10000 --fill store
"""
import argparse
import os
import re
import subprocess
import shutil
import smtplib
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from conftest import DOMAIN, PASSWORD, Magpied  # noqa: E402
from webmail_browser import Browser  # noqa: E402

ALICE = f"alice@{DOMAIN}"


def fill(port, count, sessions=8):
    def work(first):
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
            for i in range(first, count, sessions):
                body = (f"From: Sender {i % 97} <s{i % 97}@elsewhere.test>\r\nTo: {ALICE}\r\n"
                        f"Subject: Message {i} about topic {i % 13}\r\nMessage-ID: <m{i}@elsewhere.test>\r\n"
                        f"Date: Sun, 29 Nov 2026 12:00:00 +0000\r\n\r\nLine one of message {i}.\r\n" * 1)
                client.sendmail(f"s{i % 97}@elsewhere.test", [ALICE], body.encode())
    threads = [threading.Thread(target=work, args=(s,)) for s in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fill", choices=("smtp", "store"), default="smtp")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="magpie-webmail-bench-"))
    (work / "mx").mkdir()
    server = Magpied(work / "mx", tls=False,
                     sections={"http": {"listen": ["127.0.0.1:0"], "allow_plaintext_login": True}})
    server.magpie("domain", "add", DOMAIN)
    server.add_user(ALICE)
    started = time.time()
    if args.fill == "store":
        build = Path(os.environ.get("MAGPIE_BUILD_DIR", ROOT / "build"))
        if not build.is_absolute():
            build = ROOT / build
        subprocess.run([str(build / "tests" / "tools" / "magpie_fill_mailbox"), str(server.data), ALICE, "INBOX",
                        str(args.messages)], check=True, capture_output=True)
        print(f"filled {args.messages} messages into the store in {time.time() - started:.1f} s")
    server.start()
    browser = None
    try:
        port = int(re.search(r"listening on 127\.0\.0\.1:(\d+) \(http\)", server.current_log()).group(1))
        if args.fill == "smtp":
            fill(server.smtp_port, args.messages)
            print(f"filled {args.messages} messages over SMTP in {time.time() - started:.1f} s")
        browser = Browser(work)
        base = f"http://127.0.0.1:{port}/"
        sign_in, reopen, navigation = [], [], []
        for _ in range(args.rounds):
            browser.goto(url=base)
            browser.fill(selector="#username", value=ALICE)
            browser.fill(selector="#password", value=PASSWORD)
            t0 = time.perf_counter()
            browser.click(selector="form button[type=submit]")
            browser.wait(selector=".list .row", timeout=30000)
            sign_in.append(time.perf_counter() - t0)
            browser.click(selector="nav.mailboxes [data-mailbox=Drafts]")
            browser.wait(selector=".list .empty")
            t0 = time.perf_counter()
            browser.click(selector="nav.mailboxes [data-mailbox=INBOX]")
            browser.wait(selector=".list .row", timeout=30000)
            reopen.append(time.perf_counter() - t0)
            # A new navigation with the session cookie: HTML, script, session, JMAP, first rows.
            browser.goto(url=base)
            browser.wait(selector=".list .row", timeout=30000)
            navigation.append(browser.eval(
                script="() => performance.getEntriesByName('magpie:first-page')[0].startTime") / 1000)
            browser.click(selector="button:has-text('Sign out')")
            browser.wait(selector="#username")
        print(f"navigation to first page (browser clock): median {statistics.median(navigation) * 1000:.0f} ms "
              f"(min {min(navigation) * 1000:.0f}, max {max(navigation) * 1000:.0f}) over {args.rounds}")
        print(f"sign-in to first page: median {statistics.median(sign_in) * 1000:.0f} ms "
              f"(min {min(sign_in) * 1000:.0f}, max {max(sign_in) * 1000:.0f}) over {args.rounds}")
        print(f"INBOX click to first page: median {statistics.median(reopen) * 1000:.0f} ms "
              f"(min {min(reopen) * 1000:.0f}, max {max(reopen) * 1000:.0f}) over {args.rounds}")
    finally:
        if browser:
            browser.close()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
