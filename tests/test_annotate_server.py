"""`bpo annotate` as a real server (uvicorn in its own process): refusals, escaping, concurrency, SIGKILL."""

import signal
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from humanrun import Server, paused_run

from bpo.annotate.store import LabelStore, shows_first_on_left


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A paused run (4 pairs in phase 0) with two raters; pair 0's first response holds HTML."""
    run, _ = paused_run(tmp_path_factory.mktemp("server"), "annotator.overlap=2")
    store = LabelStore.open(run)
    with store._write() as con:  # a model that answers with markup: it must show as text
        con.execute("UPDATE pairs SET first = ? WHERE idx = 0", ("<script>window.pwned = 1</script><b>bold</b> & co",))
    return run


@pytest.fixture(scope="module")
def tokens(run):
    store = LabelStore.open(run)
    return {name: store.add_rater(name) for name in ("ann", "bob")}


@pytest.fixture(scope="module")
def server(run, tokens):
    with Server(run) as server:
        yield server


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_requests_without_a_token_or_with_a_wrong_one_are_refused(server, tokens):
    for path in ("/", "/app.js", "/api/state"):
        assert httpx.get(server.url + path).status_code == 401
        assert httpx.get(server.url + path, headers=bearer("not-a-token")).status_code == 403
        assert httpx.get(server.url + path, headers=bearer(tokens["ann"])).status_code == 200
    assert (
        httpx.post(
            server.url + "/api/label", json={"pair_id": "p000-00000", "choice": "left", "nonce": "x"}
        ).status_code
        == 401
    )
    assert httpx.get(server.url + "/api/state?token=wrong").status_code == 403


def test_foreign_host_or_origin_is_refused(server, tokens):
    """DNS rebinding: a page of evil.example resolving to 127.0.0.1 sends Host: evil.example; a cross-site
    page sends its own Origin. Both are refused even with a valid token."""
    auth = bearer(tokens["ann"])
    assert (
        httpx.get(server.url + "/api/state", headers={**auth, "Host": f"evil.example:{server.port}"}).status_code == 403
    )
    assert httpx.get(server.url + "/api/state", headers={**auth, "Host": "127.0.0.1:1"}).status_code == 403
    assert (
        httpx.post(
            server.url + "/api/undo", json={"nonce": "x"}, headers={**auth, "Origin": "http://evil.example"}
        ).status_code
        == 403
    )
    assert httpx.get(server.url + "/api/state", headers={**auth, "Origin": "null"}).status_code == 403
    ok = httpx.get(
        server.url + "/api/state",
        headers={**auth, "Host": f"localhost:{server.port}", "Origin": f"http://localhost:{server.port}"},
    )
    assert ok.status_code == 200


def test_page_is_static_and_forbids_inline_script(server, tokens):
    page = httpx.get(server.url + "/", headers=bearer(tokens["ann"]))
    assert (
        "script-src 'self'" in page.headers["content-security-policy"]
        and "unsafe-inline" not in page.headers["content-security-policy"]
    )
    assert "<script>window.pwned" not in page.text  # model text never goes into the HTML; the script adds it as text
    script = httpx.get(server.url + "/app.js", headers=bearer(tokens["ann"])).text
    assert "textContent" in script and not any(
        sink in script for sink in (".innerHTML", ".outerHTML", "insertAdjacentHTML", "document.write")
    )


def test_rater_link_sets_a_cookie_and_leaves_the_address_bar(server, tokens):
    r = httpx.get(server.url + f"/?token={tokens['bob']}")
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert f"bpo_rater_{server.port}={tokens['bob']}" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert (
        httpx.get(server.url + "/api/state", cookies={f"bpo_rater_{server.port}": tokens["bob"]}).json()["rater"]
        == "bob"
    )


def test_two_raters_fifty_concurrent_requests(tmp_path):
    """50 requests at once (2 raters x 4 pairs, each label sent 5 or 6 times as a page's retries would, plus
    state reads): every one answered 200, one row per rater per pair, no "database is locked"."""
    run, _ = paused_run(tmp_path, "annotator.overlap=2")
    store = LabelStore.open(run)
    tokens = {name: store.add_rater(name) for name in ("ann", "bob")}
    pairs = [c.id for c in store.candidates(0)]
    jobs = [(name, pid, f"{name}-{pid}") for name in tokens for pid in pairs]  # 8 labels, one nonce each
    requests = [("label", *jobs[i % len(jobs)]) for i in range(44)] + [
        ("state", name, None, None) for name in tokens for _ in range(3)
    ]
    with Server(run) as server, httpx.Client(timeout=60) as client:

        def send(request):
            kind, name, pid, nonce = request
            if kind == "state":
                return client.get(server.url + "/api/state", headers=bearer(tokens[name]))
            return client.post(
                server.url + "/api/label",
                headers=bearer(tokens[name]),
                json={"pair_id": pid, "choice": "left" if hash(nonce) % 2 else "right", "nonce": nonce},
            )

        with ThreadPoolExecutor(max_workers=50) as pool:
            answers = list(pool.map(send, requests))
        err = server.stop()
    assert len(requests) == 50 and [a.status_code for a in answers] == [200] * 50
    assert (
        sum(a.json().get("applied", False) for a in answers) == 8
    )  # each label applied once, its repeats changed nothing
    rows = store.labels(0)
    assert sorted((r.pair_id, r.rater) for r in rows) == sorted((pid, name) for name, pid, _ in jobs)
    assert "locked" not in err and "Traceback" not in err


def test_acknowledged_labels_survive_sigkill(tmp_path):
    """Labels the server answered 200 are on disk: kill -9 the server after N of them, restart, all N are there."""
    run, _ = paused_run(tmp_path)
    store = LabelStore.open(run)
    token = store.add_rater("ann")
    server = Server(run).start()
    acked = []
    with httpx.Client(timeout=30) as client:
        for pair in store.candidates(0)[:3]:
            r = client.post(
                server.url + "/api/label",
                headers=bearer(token),
                json={"pair_id": pair.id, "choice": "left", "nonce": uuid.uuid4().hex},
            )
            assert r.status_code == 200
            acked.append(pair.id)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(timeout=30)
    with Server(run, server.port) as again:
        state = httpx.get(again.url + "/api/state", headers=bearer(token)).json()
    rows = LabelStore.open(run).labels(0)
    assert [r.pair_id for r in rows] == acked and state["progress"]["mine"] == 3
    # "left" was stored in each pair's own orientation, as the rater saw it
    assert [r.choice for r in rows] == ["first" if shows_first_on_left("ann", pid) else "second" for pid in acked]


def test_undo_is_idempotent_and_kept_in_history(tmp_path):
    run, _ = paused_run(tmp_path)
    store = LabelStore.open(run)
    token = store.add_rater("ann")
    with Server(run) as server, httpx.Client(timeout=30, headers=bearer(token)) as client:
        first = client.get(server.url + "/api/state").json()["pair"]["id"]
        r = client.post(server.url + "/api/label", json={"pair_id": first, "choice": "tie", "nonce": "n1"}).json()
        assert r["applied"] and r["undo"] == "n1" and r["pair"]["id"] != first
        assert (
            client.post(server.url + "/api/label", json={"pair_id": first, "choice": "tie", "nonce": "n1"}).json()[
                "applied"
            ]
            is False
        )
        u = client.post(server.url + "/api/undo", json={"nonce": "n1"}).json()
        assert u["applied"] and u["pair"]["id"] == first and u["undo"] is None
        assert client.post(server.url + "/api/undo", json={"nonce": "n1"}).json()["applied"] is False  # a retried undo
        late = client.post(server.url + "/api/label", json={"pair_id": first, "choice": "tie", "nonce": "n1"}).json()
        assert late["applied"] is False  # a label that was undone is not brought back by a late retry
        bad = client.post(server.url + "/api/label", json={"pair_id": "p000-09999", "choice": "left", "nonce": "n2"})
        assert bad.status_code == 404
        assert (
            client.post(server.url + "/api/label", json={"pair_id": first, "choice": "best", "nonce": "n3"}).status_code
            == 400
        )
    assert store.labels(0) == [] and store.undone_count() == 1
