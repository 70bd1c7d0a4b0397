"""A rater labels a whole phase in a real headless Chromium (Debian's, driven by Playwright), with the
keyboard, undoes a label, loses one answer (the page retries), and the resumed run trains on exactly the
labels given."""

import json
from pathlib import Path

import pytest
from humanrun import Server, paused_run

from bpo.annotate.store import LabelStore
from bpo.cli import main

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (.ci/run installs it with apt-get)"
)
HTML = "<script>window.pwned = 1</script><b>bold</b> &amp; co"


def test_a_rater_labels_a_phase_with_the_keyboard_and_the_run_trains_on_those_labels(tmp_path):
    from playwright.sync_api import sync_playwright

    run, _ = paused_run(tmp_path)
    store = LabelStore.open(run)
    with store._write() as con:  # a model answering with markup (the tiny model only says w0..w59)
        con.execute("UPDATE pairs SET second = ? WHERE idx = 1", (HTML,))
    pairs = {c.id: c for c in store.candidates(0)}
    token = store.add_rater("ann")
    expected = {}  # pair id -> (chosen, rejected) as the rater decided on screen
    with Server(run) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--headless"])
        page = browser.new_page()
        page.goto(f"{server.url}/?token={token}")
        assert page.url == server.url + "/"  # the token left the address bar for a cookie
        page.wait_for_function("document.body.dataset.pair")

        def press(key: str) -> None:
            before = page.evaluate("document.body.dataset.pair")
            page.keyboard.press(key)
            page.wait_for_function(
                "([p]) => !document.body.dataset.busy && document.body.dataset.pair !== p", arg=[before]
            )

        lost = []  # the answer to the second label is lost after the server committed it: the page must retry

        def lose_one_answer(route):
            if len(shown) == 1 and not lost:
                lost.append(route.fetch().json())  # the request reaches the server, its answer never the page
                return route.abort()
            route.continue_()

        page.route("**/api/label", lose_one_answer)
        shown = []
        while page.evaluate("document.body.dataset.pair"):
            pid = page.evaluate("document.body.dataset.pair")
            left, right = page.text_content("#left"), page.text_content("#right")
            assert {left, right} == {pairs[pid].first.text, pairs[pid].second.text} and page.text_content(
                "#prompt"
            ) == pairs[pid].prompt
            if HTML in (left, right):  # shown as text: no script ran, no element was made
                assert page.evaluate("window.pwned") is None and page.locator("main b").count() == 0
            if not shown:  # the first pair: a wrong label, undone, then the right one
                press("ArrowRight")
                assert "you: 1 labelled" in page.text_content("#progress-rater")
                press("u")
                assert page.evaluate("document.body.dataset.pair") == pid
            key = ("ArrowLeft", "2", "1", "ArrowRight")[len(shown) % 4]
            expected[pid] = (left, right) if key in ("ArrowLeft", "1") else (right, left)
            shown.append(pid)
            press(key)
        assert page.is_visible("#done") and "4 of 4 labels, 4 of 4 pairs done" in page.text_content("#progress-phase")
        browser.close()
    assert lost and lost[0]["applied"] is True  # committed on the first try; the retry changed nothing
    assert sorted(shown) == sorted(pairs) and store.undone_count() == 1 and len(store.labels(0)) == 4
    assert main(["train", "--resume", str(run), "--quiet"]) == 4  # phase 0 trained; phase 1 waits for labels
    trained = [json.loads(line) for line in (run / "pairs" / "phase-000.jsonl").read_text().splitlines()]
    assert {p["id"]: (p["chosen"], p["rejected"]) for p in trained} == expected
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [0, 1]
