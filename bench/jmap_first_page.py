#!/usr/bin/python3
"""How long Email/query takes for the first page of a large mailbox over HTTP (issue 14: "the first page of a
100,000-message mailbox comes back in well under 100 ms"): position 0, limit 50, filter inMailbox, receivedAt
descending, calculateTotal, as a webmail or a JMAP client asks first.

Fills alice's INBOX with N messages through tests/tools/magpie_fill_mailbox (the server stopped), starts
magpied and times the request several times, printing the median. Asserts nothing (tests never assert
timings). Run it against two builds to compare them:

  MAGPIE_BUILD_DIR=build-release /usr/bin/python3 bench/jmap_first_page.py --messages 100000
"""
import argparse
import base64
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from conftest import BUILD, DOMAIN, PASSWORD, Magpied  # noqa: E402

ALICE = f"alice@{DOMAIN}"


def api(port, calls):
    body = json.dumps({"using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
                       "methodCalls": calls}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/jmap/api", data=body, method="POST")
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{ALICE}:{PASSWORD}".encode()).decode())
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())["methodResponses"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="magpie-jmap-bench-"))
    (work / "mx").mkdir()
    server = Magpied(work / "mx", tls=False,
                     sections={"http": {"listen": ["127.0.0.1:0"], "allow_plaintext_login": True}})
    try:
        server.magpie("domain", "add", DOMAIN)
        server.add_user(ALICE)
        started = time.time()
        fill = BUILD / "tests" / "tools" / "magpie_fill_mailbox"
        subprocess.run([str(fill), str(server.data), ALICE, "INBOX", str(args.messages)], check=True,
                       capture_output=True, timeout=1200)
        print(f"filled {args.messages} messages in {time.time() - started:.1f} s ({BUILD})")
        server.start()
        port = int(re.search(r"listening on 127\.0\.0\.1:(\d+) \(http\)", server.current_log()).group(1))
        session = urllib.request.Request(f"http://127.0.0.1:{port}/jmap/session")
        session.add_header("Authorization", "Basic " + base64.b64encode(f"{ALICE}:{PASSWORD}".encode()).decode())
        with urllib.request.urlopen(session, timeout=60) as response:
            account = json.loads(response.read())["primaryAccounts"]["urn:ietf:params:jmap:mail"]
        boxes = api(port, [["Mailbox/get", {"accountId": account}, "0"]])[0][1]["list"]
        inbox = next(m["id"] for m in boxes if m["role"] == "inbox")
        query = ["Email/query", {"accountId": account, "filter": {"inMailbox": inbox},
                                 "sort": [{"property": "receivedAt", "isAscending": False}],
                                 "position": 0, "limit": 50, "calculateTotal": True}, "q"]
        times = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            answer = api(port, [query])[0][1]
            times.append(time.perf_counter() - t0)
            assert len(answer["ids"]) == 50 and answer["total"] == args.messages, answer.get("total")
        print(f"Email/query first page of {args.messages}: median {statistics.median(times) * 1000:.1f} ms "
              f"(min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f}) over {args.rounds}")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
