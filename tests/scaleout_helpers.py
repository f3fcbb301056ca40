"""Many small mailboxes, and workers that write down every provider call they make.

Used by tests/test_scaleout.py and tests/benchmarks/bench_worker_emulator.py:

- ``local_team(root, n, url, ...)`` writes a config with ``n`` Maildir mailboxes (one client
  question and the rep's answer in each) and returns its path;
- ``python -m tests.scaleout_helpers CONFIG RECORDS NAME`` runs one worker process
  (``followup run`` with a recording ``connect``); each pass (``Worker.work``) and each provider
  call becomes JSON lines ``{"mailbox", "worker", "call", "start", "end"}`` (wall-clock seconds)
  in ``RECORDS/NAME.jsonl``, one when it begins (``end`` null) and one when it ends, so a worker
  killed with SIGKILL still shows what it was doing; SIGUSR1 makes it load the language models
  (recorded as ``warm_up``), as its first detected client mail would;
- ``read_calls`` and ``passes`` read them back.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def pg_schema_url(base: str, schema: str, *, durable: bool = True) -> str:
    """``base`` with every connection's search_path set to ``schema`` (a throwaway schema).

    ``durable=False`` also turns synchronous_commit off: a commit no longer waits for the WAL
    flush (only a server crash could lose it), which tests of leasing need not pay for.
    """
    sep = "&" if "?" in base else "?"
    options = f"-csearch_path%3D{schema}"
    if not durable:
        options += "%20-csynchronous_commit%3Doff"
    return f"{base}{sep}options={options}"


def _mail(sender: str, to: str, subject: str, when: datetime, msgid: str, body: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = msgid
    msg.set_content(body)
    return bytes(msg)


def _deliver(folder: Path, raw: bytes) -> None:
    """File ``raw`` in the Maildir ``folder`` (made if need be) as one new message."""
    for sub in ("tmp", "new", "cur"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / "new" / f"{time.time_ns()}.{os.getpid()}.scale").write_bytes(raw)


def write_config(root: Path, url: str, team: str, boxes: list[str], **service: float) -> Path:
    """A worker config in ``root`` over the shipped rules and templates, with ``root``'s
    clients.csv, the ``[[mailboxes]]`` tables ``boxes`` and the ``[service]`` settings given."""
    settings = "".join(f"{key} = {value}\n" for key, value in service.items())
    config = (
        f"[database]\nurl = {json.dumps(url)}\n\n"
        f'[team]\nname = "{team}"\ndomains = ["team.example"]\n\n'
        f"[paths]\nrules = {json.dumps(str(REPO / 'rules'))}\n"
        f"templates = {json.dumps(str(REPO / 'templates'))}\n"
        'clients = "clients.csv"\n\n'
        f'[service]\nlisten = ""\nlog_format = "json"\n{settings}\n'
    )
    path = root / "config.toml"
    path.write_text(config + "\n".join(boxes))
    return path


def local_team(
    root: Path,
    n: int,
    url: str,
    *,
    poll_seconds: float,
    lease_seconds: float,
    concurrency: int = 8,
    now: datetime | None = None,
) -> Path:
    """Write ``root/config.toml`` with ``n`` local mailboxes ``m000``... and return its path.

    Each mailbox holds a client's question from two days before ``now`` and the rep's answer
    an hour later: a full pipeline pass (match, plan, a promise that was met) with nothing to send.
    """
    now = now or datetime.now(UTC)
    asked = now - timedelta(days=2)
    root.mkdir(parents=True, exist_ok=True)
    clients = ["name,emails,domains,company,language,time zone,country,tier,owner,tags"]
    boxes = []
    for i in range(n):
        name = f"m{i:03d}"
        rep = f"{name}@team.example"
        client = f"c{i}@client{i}.example"
        clients.append(f"Client {i},{client},client{i}.example,Client {i} Ltd,en,UTC,GB,,{rep},")
        question = f"<q{i}@client{i}.example>"
        _deliver(
            root / "mail" / name / "inbox",
            _mail(client, rep, "Prices", asked, question, "Could you send the price list?"),
        )
        answer = _mail(
            rep, client, "Re: Prices", asked + timedelta(hours=1), f"<a{i}@team.example>", "Sure."
        )
        _deliver(root / "mail" / name / "sent", answer)
        boxes.append(
            f'[[mailboxes]]\nname = "{name}"\nprovider = "local"\naddress = "{rep}"\n'
            f'rep_name = "Rep {i}"\nzone = "UTC"\npath = "mail/{name}"\n'
        )
    (root / "clients.csv").write_text("\n".join(clients) + "\n")
    return write_config(
        root,
        url,
        "Scale",
        boxes,
        poll_seconds=poll_seconds,
        lease_seconds=lease_seconds,
        shutdown_timeout=10,
        concurrency=concurrency,
    )


# -- recording ---------------------------------------------------------------------------------
class Recorder:
    """Appends one JSON line per provider call to a file opened with O_APPEND."""

    def __init__(self, path: Path, worker: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.worker = worker

    def write(self, mailbox: str, call: str, start: float, end: float | None) -> None:
        line = {"mailbox": mailbox, "worker": self.worker, "call": call, "start": start, "end": end}
        os.write(self.fd, (json.dumps(line) + "\n").encode())  # one write: lines never interleave


class _Recorded:
    """A provider whose every method call is written down, then passed on unchanged."""

    def __init__(self, inner: Any, mailbox: str, recorder: Recorder) -> None:
        self._inner = inner
        self._mailbox = mailbox
        self._recorder = recorder

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._inner, attr)
        if not callable(value) or attr.startswith("_"):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            start = time.time()
            # A line when the call begins too: a call cut short by SIGKILL still shows.
            self._recorder.write(self._mailbox, attr, start, None)
            try:
                return value(*args, **kwargs)
            finally:
                self._recorder.write(self._mailbox, attr, start, time.time())

        return call


def recording(connect: Callable[..., Any], recorder: Recorder) -> Callable[..., Any]:
    """A worker ``connect`` that wraps the providers ``connect`` opens."""
    from agent.providers.registry import Connection

    def wrapped(mailbox: Any, creds: Any, vault: Any) -> Connection:
        conn = connect(mailbox, creds, vault)
        mail = _Recorded(conn.mail, mailbox.name, recorder)
        if conn.calendar is None:
            return Connection(mail, None)
        same = conn.calendar is conn.mail
        calendar = mail if same else _Recorded(conn.calendar, mailbox.name, recorder)
        return Connection(mail, calendar)

    return wrapped


@dataclass(frozen=True)
class Call:
    mailbox: str
    worker: str
    call: str
    start: float
    end: float


@dataclass(frozen=True)
class Pass:
    mailbox: str
    worker: str
    start: float
    end: float


def read_calls(folder: Path, *, unfinished_end: float = float("inf")) -> list[Call]:
    """Every recorded call; one that began but never ended (its worker was killed) ends at
    ``unfinished_end``."""
    calls = []
    for f in sorted(folder.glob("*.jsonl")):
        begun: dict[tuple[str, str, float], dict[str, Any]] = {}
        for line in f.read_text().splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key = (item["mailbox"], item["call"], item["start"])
            if item["end"] is None:
                begun[key] = item
            else:
                begun.pop(key, None)
                calls.append(Call(**item))
        for item in begun.values():
            calls.append(Call(**{**item, "end": unfinished_end}))
    return calls


def passes(calls: Iterable[Call]) -> list[Pass]:
    """The passes (``Worker.work`` calls) among the recorded calls, by start time."""
    return sorted(
        (Pass(c.mailbox, c.worker, c.start, c.end) for c in calls if c.call == "pass"),
        key=lambda p: p.start,
    )


def overlaps(all_passes: Iterable[Pass]) -> list[tuple[Pass, Pass]]:
    """Pairs of passes over one mailbox by different workers whose times overlap."""
    by_box: dict[str, list[Pass]] = {}
    for p in all_passes:
        by_box.setdefault(p.mailbox, []).append(p)
    bad = []
    for items in by_box.values():
        items.sort(key=lambda p: p.start)
        for i, a in enumerate(items):
            for b in items[i + 1 :]:
                if b.start >= a.end:
                    break
                if b.worker != a.worker:
                    bad.append((a, b))
    return bad


# -- a worker process --------------------------------------------------------------------------
def main(argv: list[str]) -> int:
    """``CONFIG RECORDS NAME``: run one worker until SIGTERM, recording its provider calls."""
    from agent import logs
    from agent.providers.registry import open_mailbox
    from agent.worker import PassResult, Worker

    config, records, name = Path(argv[0]), Path(argv[1]), argv[2]
    recorder = Recorder(records / f"{name}.jsonl", name)
    worker = Worker(
        config, owner=f"{name}:{os.getpid()}", connect=recording(open_mailbox, recorder)
    )
    work = worker.work

    def recorded_work(mailbox: str) -> PassResult:
        # A pass runs from the lease (just before) to finish (inside): it is what must never
        # overlap another worker's pass on the same mailbox.
        start = time.time()
        recorder.write(mailbox, "pass", start, None)
        try:
            return work(mailbox)
        finally:
            recorder.write(mailbox, "pass", start, time.time())

    worker.work = recorded_work  # type: ignore[method-assign, assignment]

    def warm_up(_signum: int, _frame: object) -> None:
        # What the first detected client mail does: load the language models. Recorded as a
        # call named "warm_up" so a benchmark can read the memory before and after.
        def load() -> None:
            from agent import language

            start = time.time()
            language.warm_up(worker.loaded.settings.team.languages)
            recorder.write("", "warm_up", start, time.time())

        threading.Thread(target=load, name="warm-up", daemon=True).start()

    signal.signal(signal.SIGUSR1, warm_up)
    logs.setup(worker.loaded.settings.service.log_format)
    threading.current_thread().name = name
    return worker.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
