"""The label store: one SQLite file in the run folder (labels.sqlite), the only place human labels live.

    pairs    each sampled pair awaiting labels: prompt, the two responses as sampled ("first",
             "second"), their token ids and behavior log-probs (so nothing is ever sampled again)
    rounds   per phase and sampling round: prompts used, sampler calls, identical pairs dropped
    raters   name and the SHA-256 of the rater's secret token (the token itself is never stored)
    labels   one row per (pair, rater): the choice in the pair's own orientation, which response the
             page showed on the left, the client's nonce, where it came from and when
    undone   every label a rater took back (kept: nothing is ever lost)
    closed   phases whose labels a training run has consumed: they can no longer change

Durability: WAL journal, synchronous=FULL (a commit is on disk when it returns), a busy timeout so
concurrent writers wait instead of failing, and every write in a BEGIN IMMEDIATE transaction (a
reader never has to upgrade to a writer, which is where WAL databases report "database is locked").
One connection per operation, so the store is safe to use from a web server's threads.

Idempotency: a label carries a nonce chosen by the client; the same label sent again (a retry whose
answer was lost) changes nothing, and a label whose nonce was undone is not applied again.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from bpo.annotate.agreement import CHOICES
from bpo.data.chat import Prompt
from bpo.data.records import Response

STORE_NAME = "labels.sqlite"
BUSY_TIMEOUT_S = 60
RATER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rounds (
    phase INTEGER NOT NULL, round INTEGER NOT NULL, prompts INTEGER NOT NULL, draws INTEGER NOT NULL,
    identical INTEGER NOT NULL, at REAL NOT NULL, PRIMARY KEY (phase, round));
CREATE TABLE IF NOT EXISTS pairs (
    id TEXT PRIMARY KEY, phase INTEGER NOT NULL, round INTEGER NOT NULL, idx INTEGER NOT NULL,
    prompt TEXT NOT NULL, first TEXT NOT NULL, second TEXT NOT NULL, tokens TEXT NOT NULL,
    UNIQUE (phase, idx));
CREATE TABLE IF NOT EXISTS raters (name TEXT PRIMARY KEY, token_sha256 TEXT NOT NULL UNIQUE, added REAL NOT NULL);
CREATE TABLE IF NOT EXISTS labels (
    pair_id TEXT NOT NULL REFERENCES pairs(id), rater TEXT NOT NULL,
    choice TEXT NOT NULL CHECK (choice IN ('first', 'second', 'tie', 'both_bad')),
    shown_left TEXT CHECK (shown_left IN ('first', 'second')), nonce TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL, at REAL NOT NULL, PRIMARY KEY (pair_id, rater));
CREATE TABLE IF NOT EXISTS undone (
    nonce TEXT PRIMARY KEY, pair_id TEXT NOT NULL, rater TEXT NOT NULL, choice TEXT NOT NULL,
    shown_left TEXT, source TEXT NOT NULL, at REAL NOT NULL, undone_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS closed (phase INTEGER PRIMARY KEY, at REAL NOT NULL);
"""
# The pair each rater was last shown (one row per rater), so that raters labelling at once are given
# different pairs; a table of its own so that a store made before it gains it where it is used (next_for).
SHOWN_SCHEMA = "CREATE TABLE IF NOT EXISTS shown (rater TEXT PRIMARY KEY, pair_id TEXT NOT NULL);"


class StoreError(ValueError):
    """A problem a user can act on (bad rater name, unknown pair, missing store): one line."""


class UnknownPair(StoreError):
    """A label for a pair id this run does not have."""


class LabelConflict(Exception):
    """A label that cannot be applied: the phase was already trained on, or the rater labelled the pair
    differently before (another tab). The client should reload its state."""


@dataclass(frozen=True)
class Candidate:
    """A sampled pair awaiting labels, as stored."""

    id: str  # "p000-00003": phase, index within the phase (over all its rounds)
    phase: int
    round: int  # sampling round within the phase (a later round replaces undecided pairs)
    index: int
    prompt: Prompt  # a text or a conversation (stored as JSON, so a conversation comes back whole)
    prompt_ids: list[int]
    first: Response  # the two responses in the order sampled
    second: Response


@dataclass(frozen=True)
class LabelRow:
    pair_id: str
    phase: int
    rater: str
    choice: str  # one of CHOICES, in the pair's orientation
    source: str  # "web" or "FILE:LINE" of an imported export


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def shows_first_on_left(rater: str, pair_id: str) -> bool:
    """Which response a rater sees on the left: a fair coin per (rater, pair), the same on every reload."""
    return hashlib.sha256(f"{rater}\0{pair_id}".encode()).digest()[0] % 2 == 0


class LabelStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def create(cls, path: str | Path, overlap: int) -> LabelStore:
        """Open the store, making it (WAL mode, the schema, the run's overlap) if it is not there yet."""
        store = cls(path)
        con = sqlite3.connect(store.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=WAL")  # persistent: recorded in the file
            con.executescript(SCHEMA + SHOWN_SCHEMA)
            con.execute("INSERT OR IGNORE INTO meta VALUES ('overlap', ?)", (str(overlap),))
        finally:
            con.close()
        return store

    @classmethod
    def open(cls, run_dir: str | Path) -> LabelStore:
        """The store of a run folder that has one (a run with annotator.kind=human or external)."""
        path = Path(run_dir) / STORE_NAME
        if not path.is_file():
            raise StoreError(
                f"{run_dir}: no {STORE_NAME}; start a run with annotator.kind=human (or external) there first"
            )
        return cls(path)

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
        con.execute("PRAGMA synchronous = FULL")
        con.execute("PRAGMA foreign_keys = ON")
        return con

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")  # durable on return: synchronous=FULL
        finally:
            con.close()

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        con = self._connect()
        try:
            yield con
        finally:
            con.close()

    @property
    def overlap(self) -> int:
        with self._read() as con:
            return int(con.execute("SELECT value FROM meta WHERE key = 'overlap'").fetchone()[0])

    # raters -------------------------------------------------------------------------------------

    def add_rater(self, name: str) -> str:
        """A new rater's secret token (shown once; only its hash is kept)."""
        if not RATER_NAME.match(name):
            raise StoreError(f"--add-rater: {name!r}: a rater name is 1-64 letters, digits, '_', '.', '@' or '-'")
        token = secrets.token_urlsafe(24)
        with self._write() as con:
            if con.execute("SELECT 1 FROM raters WHERE name = ?", (name,)).fetchone():
                raise StoreError(f"--add-rater: {name!r} is already a rater of this run")
            con.execute("INSERT INTO raters VALUES (?, ?, ?)", (name, token_digest(token), time.time()))
        return token

    def rater_for(self, token: str) -> str | None:
        with self._read() as con:
            row = con.execute("SELECT name FROM raters WHERE token_sha256 = ?", (token_digest(token),)).fetchone()
        return row[0] if row else None

    def raters(self) -> list[str]:
        with self._read() as con:
            return [r[0] for r in con.execute("SELECT name FROM raters ORDER BY added")]

    # pairs --------------------------------------------------------------------------------------

    def add_round(
        self,
        phase: int,
        round_: int,
        pairs: Sequence[tuple[Prompt, list[int], tuple[Response, Response]]],
        prompts: int,
        draws: int,
        identical: int,
    ) -> None:
        """A sampling round's pairs, all or nothing; ids continue the phase's numbering."""
        with self._write() as con:
            start = con.execute("SELECT COUNT(*) FROM pairs WHERE phase = ?", (phase,)).fetchone()[0]
            con.execute(
                "INSERT INTO rounds VALUES (?, ?, ?, ?, ?, ?)", (phase, round_, prompts, draws, identical, time.time())
            )
            for i, (prompt, prompt_ids, (a, b)) in enumerate(pairs, start=start):
                tokens = {
                    "prompt": prompt_ids,
                    "first": a.ids,
                    "second": b.ids,
                    "first_logp": a.logp,
                    "second_logp": b.logp,
                }
                con.execute(
                    "INSERT INTO pairs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (f"p{phase:03d}-{i:05d}", phase, round_, i, json.dumps(prompt), a.text, b.text, json.dumps(tokens)),
                )

    def rounds(self, phase: int) -> list[dict]:
        with self._read() as con:
            rows = con.execute(
                "SELECT round, prompts, draws, identical FROM rounds WHERE phase = ? ORDER BY round", (phase,)
            )
            return [dict(zip(("round", "prompts", "draws", "identical"), r)) for r in rows]

    def candidates(self, phase: int | None = None) -> list[Candidate]:
        """Stored pairs (of one phase, or all) in their order."""
        where, args = ("WHERE phase = ?", (phase,)) if phase is not None else ("", ())
        with self._read() as con:
            rows = con.execute(
                f"SELECT id, phase, round, idx, prompt, first, second, tokens FROM pairs {where} ORDER BY phase, idx",
                args,
            ).fetchall()
        return [_candidate(row) for row in rows]

    # labels -------------------------------------------------------------------------------------

    def add_label(
        self, pair_id: str, rater: str, choice: str, nonce: str, source: str = "web", shown_left: str | None = None
    ) -> bool:
        """Commit one label; True if it changed the store, False if it was there already (a retry) or
        was undone since (a late retry). Raises LabelConflict for a closed phase or a different label
        of the same rater, StoreError for an unknown pair or choice."""
        with self._write() as con:
            return self._insert(con, pair_id, rater, choice, nonce, source, shown_left)

    def add_labels(self, rows: Sequence[tuple[str, str, str, str, str]]) -> int:
        """(pair id, rater, choice, nonce, source) rows in one transaction: all are stored or none; how many were
        new."""
        with self._write() as con:
            return sum(self._insert(con, *row) for row in rows)

    @staticmethod
    def _insert(
        con: sqlite3.Connection,
        pair_id: str,
        rater: str,
        choice: str,
        nonce: str,
        source: str,
        shown_left: str | None = None,
    ) -> bool:
        if choice not in CHOICES:
            raise StoreError(f"choice: {choice!r} is not one of {', '.join(CHOICES)}")
        pair = con.execute("SELECT phase FROM pairs WHERE id = ?", (pair_id,)).fetchone()
        if pair is None:
            raise UnknownPair(f"pair_id: no pair {pair_id!r} in this run")
        if con.execute("SELECT 1 FROM undone WHERE nonce = ?", (nonce,)).fetchone():
            return False
        existing = con.execute(
            "SELECT nonce, choice, source FROM labels WHERE pair_id = ? AND rater = ?", (pair_id, rater)
        ).fetchone()
        if existing is not None:
            if existing[0] == nonce or (source != "web" and existing[1] == choice):
                return False
            raise LabelConflict(f"{rater} already labelled {pair_id} {existing[1]} (from {existing[2]})")
        if con.execute("SELECT 1 FROM closed WHERE phase = ?", pair).fetchone():
            raise LabelConflict(f"phase {pair[0]} was already trained on; its labels are final")
        con.execute(
            "INSERT INTO labels VALUES (?, ?, ?, ?, ?, ?, ?)",
            (pair_id, rater, choice, shown_left, nonce, source, time.time()),
        )
        return True

    def undo(self, rater: str, nonce: str) -> bool:
        """Take back the rater's label with this nonce (kept in `undone`); False if it is not there
        (already undone: a retry). Labels of a phase already trained on cannot be undone."""
        with self._write() as con:
            row = con.execute(
                "SELECT l.pair_id, l.choice, l.shown_left, l.source, l.at, p.phase FROM labels l JOIN pairs p ON p.id "
                "= l.pair_id "
                "WHERE l.rater = ? AND l.nonce = ?",
                (rater, nonce),
            ).fetchone()
            if row is None:
                return False
            if con.execute("SELECT 1 FROM closed WHERE phase = ?", (row[5],)).fetchone():
                raise LabelConflict(f"phase {row[5]} was already trained on; its labels are final")
            con.execute(
                "INSERT INTO undone VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (nonce, row[0], rater, row[1], row[2], row[3], row[4], time.time()),
            )
            con.execute("DELETE FROM labels WHERE nonce = ?", (nonce,))
        return True

    def labels(self, phase: int | None = None) -> list[LabelRow]:
        where, args = ("WHERE p.phase = ?", (phase,)) if phase is not None else ("", ())
        with self._read() as con:
            rows = con.execute(
                "SELECT l.pair_id, p.phase, l.rater, l.choice, l.source FROM labels l JOIN pairs p ON p.id = "
                "l.pair_id "
                f"{where} ORDER BY p.phase, p.idx, l.at",
                args,
            ).fetchall()
        return [LabelRow(*row) for row in rows]

    def undone_count(self) -> int:
        with self._read() as con:
            return con.execute("SELECT COUNT(*) FROM undone").fetchone()[0]

    # what a rater does next ---------------------------------------------------------------------

    def next_for(self, rater: str) -> Candidate | None:
        """The next pair for this rater, recorded as shown to them: in an open phase, not yet labelled by
        them, still short of the run's overlap; the fewest labels plus other raters' open views first, then
        in order. Counting the views keeps ten raters who ask at once from all labelling the same pair (with
        overlap 1 they labelled each pair about five times over); once every pair is in view, the views no
        longer exclude: a rater who walked away holds nothing back."""
        with self._write() as con:  # choose and record in one transaction: two raters asking at once differ
            con.execute(SHOWN_SCHEMA)  # a store made before views were recorded
            overlap = int(con.execute("SELECT value FROM meta WHERE key = 'overlap'").fetchone()[0])
            row = con.execute(
                "SELECT p.id, p.phase, p.round, p.idx, p.prompt, p.first, p.second, p.tokens, "
                "(SELECT COUNT(*) FROM labels l WHERE l.pair_id = p.id) AS n, "
                "(SELECT COUNT(*) FROM shown s WHERE s.pair_id = p.id AND s.rater != ?) AS viewed FROM pairs p "
                "WHERE p.phase NOT IN (SELECT phase FROM closed) "
                "AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.pair_id = p.id AND l.rater = ?) AND n < ? "
                "ORDER BY n + viewed, p.phase, p.idx LIMIT 1",
                (rater, rater, overlap),
            ).fetchone()
            if row is None:
                con.execute("DELETE FROM shown WHERE rater = ?", (rater,))
                return None
            con.execute("INSERT OR REPLACE INTO shown VALUES (?, ?)", (rater, row[0]))
        return _candidate(row[:8])

    def last_label(self, rater: str) -> tuple[str, str] | None:
        """(nonce, pair id) of the rater's most recent label in an open phase: what undo takes back."""
        with self._read() as con:
            return con.execute(
                "SELECT l.nonce, l.pair_id FROM labels l JOIN pairs p ON p.id = l.pair_id "
                "WHERE l.rater = ? AND p.phase NOT IN (SELECT phase FROM closed) "
                "ORDER BY l.at DESC, l.rowid DESC LIMIT 1",
                (rater,),
            ).fetchone()

    def progress(self, rater: str) -> dict:
        """Open phases: labels given / needed (pairs x overlap), complete pairs; this rater's labels there."""
        with self._read() as con:
            overlap = int(con.execute("SELECT value FROM meta WHERE key = 'overlap'").fetchone()[0])
            counts = con.execute(
                "SELECT p.phase, p.id, (SELECT COUNT(*) FROM labels l WHERE l.pair_id = p.id), "
                "EXISTS (SELECT 1 FROM labels l WHERE l.pair_id = p.id AND l.rater = ?) "
                "FROM pairs p WHERE p.phase NOT IN (SELECT phase FROM closed)",
                (rater,),
            ).fetchall()
        return {
            "phases": sorted({c[0] for c in counts}),
            "pairs": len(counts),
            "pairs_done": sum(c[2] >= overlap for c in counts),
            "labels": sum(min(c[2], overlap) for c in counts),
            "labels_needed": overlap * len(counts),
            "mine": sum(c[3] for c in counts),
            "mine_left": sum(1 for c in counts if not c[3] and c[2] < overlap),
        }

    def incomplete(self, phase: int) -> list[str]:
        """Ids of the phase's pairs that have fewer labels than the overlap asks for."""
        with self._read() as con:
            overlap = int(con.execute("SELECT value FROM meta WHERE key = 'overlap'").fetchone()[0])
            rows = con.execute(
                "SELECT p.id FROM pairs p WHERE p.phase = ? AND (SELECT COUNT(*) FROM labels l WHERE l.pair_id = "
                "p.id) < ? "
                "ORDER BY p.idx",
                (phase, overlap),
            ).fetchall()
        return [r[0] for r in rows]

    def close_phase(self, phase: int) -> None:
        """The phase's labels are being trained on: from now on they cannot change."""
        with self._write() as con:
            con.execute("INSERT OR IGNORE INTO closed VALUES (?, ?)", (phase, time.time()))

    def closed_phases(self) -> list[int]:
        with self._read() as con:
            return [r[0] for r in con.execute("SELECT phase FROM closed ORDER BY phase")]


def _candidate(row) -> Candidate:
    pair_id, phase, round_, idx, prompt, first, second, tokens = row
    t = json.loads(tokens)
    return Candidate(
        pair_id,
        phase,
        round_,
        idx,
        json.loads(prompt),
        t["prompt"],
        Response(first, t["first"], t["first_logp"]),
        Response(second, t["second"], t["second_logp"]),
    )
