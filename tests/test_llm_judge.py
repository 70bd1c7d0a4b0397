"""LLM judges (bpo.judging.llm): a real chat-completions server on loopback, asked through the official openai
client, with its faults (a slow answer, HTTP 500, malformed answers, a server that always says A, a phase cut
short and resumed); and a tiny local causal LM as the judge, checked for its exact symmetries."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import tinytask

import bpo
from bpo.common.configlib import ConfigError, config_from_dict
from bpo.judging.annotators import AnnotatorConfig
from bpo.judging.llm import (
    STORE_NAME,
    EndpointAnnotator,
    LLMJudgeError,
    LocalLMAnnotator,
    combine_orders,
    render,
)
from bpo.loop.config import RunConfig

RESPONSES = re.compile(r"\[Response A\]\n(.*)\n\n\[Response B\]\n(.*)\n\nWhich response", re.S)


class ChatServer:
    """POST /v1/chat/completions in the OpenAI JSON shape. It prefers the longer response (A on equal lengths);
    `faults` are taken one per request in order ("slow", "500", "malformed"); `always` answers that text to
    everything; after `fail_after` answers it returns HTTP 500 to everything."""

    def __init__(self):
        self.asked: list[str] = []  # the question of every request received
        self.answered: list[str] = []  # the question of every request answered with a completion
        self.keys: list[str] = []  # the Authorization header of every request
        self.faults: list[str] = []
        self.always: str | None = None
        self.fail_after: int | None = None
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, content = server.respond(self.path, body, self.headers.get("Authorization", ""))
                if content == "slow":
                    time.sleep(1.0)  # past the client's timeout: it has gone
                    return
                reply = json.dumps(
                    {
                        "id": "chatcmpl-test",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body.get("model"),
                        "choices": [
                            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    }
                    if status == 200
                    else {"error": {"message": content, "type": "server_error"}}
                ).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except OSError:
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def respond(self, path: str, body: dict, key: str) -> tuple[int, str]:
        question = body["messages"][0]["content"]
        with self.lock:
            self.asked.append(question)
            self.keys.append(key)
            if path != "/v1/chat/completions":
                return 404, "no such route"
            fault = self.faults.pop(0) if self.faults else None
            if fault == "slow":
                return 200, "slow"
            if fault == "500" or (self.fail_after is not None and len(self.answered) >= self.fail_after):
                return 500, "internal error"
            self.answered.append(question)
        if fault == "malformed":
            return 200, "I think A is better."
        if self.always is not None:
            return 200, self.always
        a, b = RESPONSES.search(question).groups()
        return 200, "B" if len(b) > len(a) else "A"


@pytest.fixture
def server():
    s = ChatServer()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def endpoint(server: ChatServer, store: Path | None = None, **settings) -> EndpointAnnotator:
    cfg = {"kind": "llm", "model": "judge-7b", "base_url": server.url, "backoff": 0.01, "concurrency": 1}
    return EndpointAnnotator(config_from_dict(AnnotatorConfig, {**cfg, **settings}), store)


PROMPTS = ["w1 w2", "w3", "w4 w5 w6", "w7"]
SHORT = ["w8", "w9 w10", "w11", "w12"]
LONG = ["w8 w13 w14", "w9 w10 w15 w16", "w11 w17", "w12 w18 w19"]


def test_the_longer_answer_wins_in_both_orders_and_every_answer_is_stored(server, tmp_path, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "secret-123")
    store = tmp_path / STORE_NAME
    judge = endpoint(server, store, api_key_env="JUDGE_KEY", concurrency=4)
    labels = judge.label(PROMPTS, SHORT, LONG) + judge.label(PROMPTS, LONG, SHORT)
    assert [lab.preferred for lab in labels] == [1] * 4 + [0] * 4
    assert [lab.scores for lab in labels] == [(-1.0, 1.0)] * 4 + [(1.0, -1.0)] * 4
    # each pair asked in both orders; the swapped pairs are the same questions, answered from the store
    assert len(server.asked) == 8 and len(set(server.asked)) == 8
    assert set(server.keys) == {"Bearer secret-123"}
    rows = [json.loads(line) for line in store.read_text().splitlines()]
    assert sorted(r["request"]["messages"][0]["content"] for r in rows) == sorted(server.asked)
    assert {r["answer"] for r in rows} == {"A", "B"} and {r["attempts"] for r in rows} == {1}
    assert {r["request"]["model"] for r in rows} == {"judge-7b"}
    assert "secret-123" not in store.read_text()  # the key is never written down


def test_a_server_that_always_says_a_gives_ties(server):
    server.always = "A"
    labels = endpoint(server).label(PROMPTS, SHORT, LONG)
    assert [(lab.preferred, lab.scores) for lab in labels] == [(None, (0.0, 0.0))] * 4


def test_a_slow_answer_times_out_and_the_retry_gets_it(server, tmp_path):
    server.faults = ["slow"]
    store = tmp_path / STORE_NAME
    started = time.perf_counter()
    labels = endpoint(server, store, request_timeout=0.3, retries=2).label(PROMPTS[:1], SHORT[:1], LONG[:1])
    assert labels[0].preferred == 1 and time.perf_counter() - started < 5
    assert len(server.asked) == 3 and server.asked[0] == server.asked[1]  # the timed-out question, asked again
    assert [json.loads(line)["attempts"] for line in store.read_text().splitlines()] == [2, 1]


def test_http_500_is_retried_with_backoff(server, tmp_path):
    server.faults = ["500", "500"]
    store = tmp_path / STORE_NAME
    assert endpoint(server, store, retries=2).label(PROMPTS[:1], SHORT[:1], LONG[:1])[0].preferred == 1
    assert len(server.asked) == 4 and [json.loads(line)["attempts"] for line in store.read_text().splitlines()] == [
        3,
        1,
    ]


def test_a_malformed_answer_is_retried_and_kept_for_audit(server, tmp_path):
    server.faults = ["malformed"]
    store = tmp_path / STORE_NAME
    assert endpoint(server, store, retries=1).label(PROMPTS[:1], SHORT[:1], LONG[:1])[0].preferred == 1
    first = json.loads(store.read_text().splitlines()[0])
    assert first["attempts"] == 2 and first["malformed"] == ["I think A is better."]


def test_answers_that_stay_malformed_stop_with_an_error_naming_the_request(server, tmp_path):
    server.always = "Response A."
    store = tmp_path / STORE_NAME
    with pytest.raises(LLMJudgeError) as err:
        endpoint(server, store, retries=2).label(PROMPTS[:1], SHORT[:1], LONG[:1])
    message = str(err.value)
    assert re.search(r"request [0-9a-f]{32} to http://127\.0\.0\.1:\d+/v1 \(model 'judge-7b'", message)
    assert "prompt 'w1 w2', first response shown as A" in message
    assert "failed after 3 attempt(s)" in message and "malformed answer 'Response A.'" in message
    assert str(store) in message and not store.exists()  # nothing was answered, nothing stored
    assert len(server.asked) == 3  # concurrency 1: the second question was never sent


def test_a_wrong_url_is_not_retried(server):
    judge = endpoint(server, retries=3, base_url=server.url.replace("/v1", "/v2"))
    with pytest.raises(LLMJudgeError, match=r"after 1 attempt\(s\): HTTP 404.*check annotator.base_url"):
        judge.label(PROMPTS[:1], SHORT[:1], LONG[:1])
    assert len(server.asked) == 1


def test_a_phase_cut_short_resumes_without_asking_anything_twice(server, tmp_path):
    store = tmp_path / STORE_NAME
    server.fail_after = 3
    with pytest.raises(LLMJudgeError, match="HTTP 500"):
        endpoint(server, store, retries=0, concurrency=2).label(PROMPTS, SHORT, LONG)
    assert len(store.read_text().splitlines()) == len(server.answered) >= 3
    before = len(server.answered)
    server.fail_after = None
    labels = endpoint(server, store).label(PROMPTS, SHORT, LONG)  # a new process: the store read back
    assert [lab.preferred for lab in labels] == [1] * 4
    assert len(server.answered) == 8 and max(Counter(server.answered).values()) == 1
    assert len(server.answered) - before == 8 - before  # only what the store did not hold
    assert len(store.read_text().splitlines()) == 8


def test_settings_are_checked(monkeypatch):
    with pytest.raises(ConfigError, match="kind=llm needs base_url"):
        config_from_dict(RunConfig, {"annotator": {"kind": "llm", "model": "m"}})
    with pytest.raises(ConfigError, match="NAME of the environment variable"):
        config_from_dict(
            RunConfig, {"annotator": {"kind": "llm", "model": "m", "base_url": "http://h/v1", "api_key_env": "sk-12"}}
        )
    with pytest.raises(ConfigError, match="need request_timeout > 0"):
        config_from_dict(
            RunConfig, {"annotator": {"kind": "llm", "model": "m", "base_url": "http://h/v1", "request_timeout": 0}}
        )
    monkeypatch.delenv("NO_SUCH_KEY_VARIABLE", raising=False)
    cfg = AnnotatorConfig(kind="llm", model="m", base_url="http://127.0.0.1:9/v1", api_key_env="NO_SUCH_KEY_VARIABLE")
    with pytest.raises(LLMJudgeError, match="NO_SUCH_KEY_VARIABLE: that environment variable is not set"):
        EndpointAnnotator(cfg, None)


def test_a_template_must_hold_every_placeholder_and_fills_in_one_pass(tmp_path):
    bad = tmp_path / "t.txt"
    bad.write_text("{prompt} {response_a}")
    with pytest.raises(LLMJudgeError, match=r"lacks \{response_b\}"):
        EndpointAnnotator(AnnotatorConfig(kind="llm", model="m", base_url="http://h/v1", template=str(bad)), None)
    assert render("{prompt}|{response_a}|{response_b}", "p", "{response_b}", "b") == "p|{response_b}|b"


def test_combining_both_orders_cancels_a_position_preference():
    assert combine_orders(1.0, -1.0).preferred == 0 and combine_orders(-1.0, 1.0).preferred == 1
    assert combine_orders(1.0, 1.0).preferred is None  # always A: a tie
    assert combine_orders(2.5, 0.5).scores == (1.0, -1.0)  # a bias of +1.5 towards A cancels
    assert combine_orders(0.3, 0.1, tie_band=0.2).preferred is None


# A whole run labelled by the endpoint, cut short in its first phase and resumed.

RUN = {
    "schedule.steps": 4,
    "schedule.phases": 2,
    "schedule.batch_size": 4,
    "lora.ensemble": 2,
    "sampling.max_new_tokens": 8,
    "eval.prompts": 4,
    "eval.kl": False,
    "eval.cache_before": False,
    "annotator.kind": "llm",
    "annotator.model": "judge-7b",
    "annotator.backoff": 0.01,
    "annotator.retries": 0,
    "annotator.concurrency": 2,
}


@pytest.mark.slow
def test_a_run_stopped_mid_phase_resumes_asking_nothing_twice(server, tmp_path, monkeypatch):
    monkeypatch.setenv("BPO_CACHE", str(tmp_path / "cache"))
    task = tinytask.write_task(tmp_path / "task")
    settings = {**RUN, "task": str(task), "policy.path": str(task.parent / "model"), "annotator.base_url": server.url}
    server.fail_after = 6  # the probe and five questions of phase 0, then HTTP 500
    with pytest.raises(LLMJudgeError, match="HTTP 500"):
        bpo.train({}, tmp_path / "run", overrides=settings, progress=False)
    store = tmp_path / "run" / STORE_NAME
    assert store.is_file() and not list((tmp_path / "run" / "pairs").glob("*.jsonl"))
    server.fail_after = None
    run = bpo.load_run(tmp_path / "run").resume(progress=False)
    assert run.evaluation is not None
    assert max(Counter(server.answered).values()) == 1  # nothing answered was asked again (the probe neither)
    stored = [json.loads(line) for line in store.read_text().splitlines()]
    assert len(stored) == len(server.answered) - 1  # every question but the probe, before the folder existed
    fresh = assert_same_pairs_as_a_run_never_stopped(tmp_path, settings)
    assert sorted(fresh.answered) == sorted(server.answered)


def assert_same_pairs_as_a_run_never_stopped(tmp_path: Path, settings: dict) -> ChatServer:
    """Train the same settings once more, against a fresh server, uninterrupted: the resumed run in
    tmp_path/run must hold the same 16 pairs. Returns that server (what it was asked)."""
    fresh = ChatServer()
    try:
        bpo.train({}, tmp_path / "whole", overrides={**settings, "annotator.base_url": fresh.url}, progress=False)
    finally:
        fresh.httpd.shutdown()
        fresh.httpd.server_close()
    assert pairs(tmp_path / "run") == pairs(tmp_path / "whole") and len(pairs(tmp_path / "run")) == 16
    return fresh


def pairs(folder: Path) -> list[dict]:
    return [json.loads(line) for path in sorted((folder / "pairs").glob("*.jsonl")) for line in path.open()]


# The local causal LM as the judge.


@pytest.fixture(scope="module")
def letter_model(tmp_path_factory) -> Path:
    """A tiny random Llama whose word-level vocabulary holds A and B."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["<pad>", "<unk>", "<bos>", "<eos>", "A", "B", "Answer:"] + [f"w{i}" for i in range(40)]
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>"
    )
    config = LlamaConfig(
        vocab_size=len(words),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        intermediate_size=64,
        max_position_embeddings=256,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("letter-llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_the_local_judge_is_exactly_symmetric(letter_model):
    judge = LocalLMAnnotator(AnnotatorConfig(kind="llm_local", model=str(letter_model)))
    forward = judge.label(PROMPTS, SHORT, LONG)
    swapped = judge.label(PROMPTS, LONG, SHORT)
    for one, other in zip(forward, swapped):
        assert one.scores[0] == -other.scores[0] != 0.0  # swapping the answers negates the preference exactly
        assert one.preferred == 1 - other.preferred
    same = judge.label(PROMPTS, SHORT, SHORT)
    assert [(lab.preferred, lab.scores) for lab in same] == [(None, (0.0, 0.0))] * 4  # identical answers tie


def test_the_local_judge_reads_the_letters_next_token_log_odds(letter_model):
    import torch

    judge = LocalLMAnnotator(AnnotatorConfig(kind="llm_local", model=str(letter_model)))
    text = render(judge.template, PROMPTS[0], SHORT[0], LONG[0])
    ids = judge.tokenizer(text + "\nAnswer:")["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(judge.model(input_ids=torch.tensor([ids])).logits[0, -1], -1)
    a, b = judge.tokenizer.convert_tokens_to_ids(["A", "B"])
    assert judge.a_evidence(text) == pytest.approx(float(logp[a] - logp[b]), abs=1e-5)
    assert judge.letters == [[a], [b]]  # "A" and " A" are one token here


@pytest.mark.slow
def test_a_run_labelled_by_the_local_judge(letter_model, tmp_path, monkeypatch):
    monkeypatch.setenv("BPO_CACHE", str(tmp_path / "cache"))
    task = tinytask.write_task(tmp_path / "task")
    settings = {**RUN, "task": str(task), "policy.path": str(task.parent / "model")}
    settings.update({"annotator.kind": "llm_local", "annotator.model": str(letter_model)})
    run = bpo.train({}, tmp_path / "run", overrides=settings, progress=False)
    labelled = pairs(run.folder)
    assert len(labelled) == 16 and all(p["chosen_score"] == -p["rejected_score"] > 0 for p in labelled)
    assert not (run.folder / STORE_NAME).exists()  # nothing to store: the same model answers the same again


# A real kill: the training process is SIGKILLed by the server in the middle of a phase, then resumed.


def test_a_run_killed_mid_phase_resumes_asking_nothing_twice(server, tmp_path, monkeypatch):
    """`bpo train` in a child process, labelled by the endpoint one question at a time (concurrency 1: a question
    is sent only after the previous answer is stored). On receiving the 6th question (the probe and 4 of phase
    0's answered) the server SIGKILLs the child and gives no answer. The resumed run then asks only what the
    store does not hold: every question is answered once (the unanswered 6th is asked again, it had no answer),
    and its pairs equal those of the run that was never stopped (test above: same settings, same answers)."""
    import os
    import signal
    import subprocess
    import sys

    monkeypatch.setenv("BPO_CACHE", str(tmp_path / "cache"))
    task = tinytask.write_task(tmp_path / "task")
    settings = {**RUN, "task": str(task), "policy.path": str(task.parent / "model"), "annotator.base_url": server.url}
    settings["annotator.concurrency"] = 1
    child: list[subprocess.Popen] = []
    original = server.respond

    def respond(path, body, key):
        if len(server.asked) == 5 and child:  # this is the 6th question
            server.asked.append(body["messages"][0]["content"])
            os.kill(child[0].pid, signal.SIGKILL)
            return 200, "slow"  # no answer: the client has gone
        return original(path, body, key)

    server.respond = respond
    here = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here), os.environ.get("PYTHONPATH", "")])}
    args = ["train", f"out={tmp_path / 'run'}", "--quiet", *(f"{k}={v}" for k, v in settings.items())]
    child.append(subprocess.Popen([sys.executable, "-m", "bpo.cli", *args], env=env, stderr=subprocess.PIPE))
    _, err = child[0].communicate(timeout=600)
    assert child[0].returncode == -signal.SIGKILL, err.decode()[-2000:]
    store = tmp_path / "run" / STORE_NAME
    assert len(store.read_text().splitlines()) == 4  # the 4 answers of phase 0 stored before the kill
    child.clear()
    run = bpo.load_run(tmp_path / "run").resume(progress=False)
    assert run.evaluation is not None
    assert max(Counter(server.answered).values()) == 1  # nothing answered was asked again
    assert len(store.read_text().splitlines()) == len(server.answered) - 1  # all but the first run's probe
    assert_same_pairs_as_a_run_never_stopped(tmp_path, settings)


# The LLM as the evaluation judge: each response against its reference.


def llm_evaluated(tmp_path: Path, monkeypatch, base_url: str) -> dict:
    """A tiny run's settings with the endpoint at `base_url` as its evaluation judge (the task's simulated rater
    labels the pairs)."""
    monkeypatch.setenv("BPO_CACHE", str(tmp_path / "cache"))
    task = tinytask.write_task(tmp_path / "task")
    return {
        **{k: v for k, v in RUN.items() if not k.startswith("annotator.")},
        "task": str(task),
        "policy.path": str(task.parent / "model"),
        "eval.judge": "llm",
        "eval.llm_model": "judge-7b",
        "eval.llm_base_url": base_url,
        "annotator.backoff": 0.01,
    }


def test_the_endpoint_as_evaluation_judge_compares_each_response_with_its_reference(server, tmp_path, monkeypatch):
    """eval.judge=llm: the server prefers the longer text (A on equal lengths). Asked with the response as A and
    then as B, a longer response gets votes +1 and +1 -> evidence (1 - (-1)) / 2 = +1 (a win), an equally long one
    +1 and -1 -> 0 (a tie), a shorter one -1 -> a loss; the reference gets the opposite. So each example's score
    is sign(len(response) - len(reference)), and the strict win rate the share of longer responses. The answers
    are kept apart from the annotator's (here the task's simulated rater), and `bpo eval` of the finished run asks
    the endpoint nothing new. The dry run counts 2 requests per response of the 2 evaluations of 8 prompts and
    the probe's one: 2 * 16 + 1 = 33; the run asks exactly that less the questions it read back (a response the
    two evaluations gave alike is asked once)."""
    settings = {
        **llm_evaluated(tmp_path, monkeypatch, server.url),
        "sampling.max_new_tokens": 6,  # answers about as long as the 4-word references: both outcomes occur
        "eval.prompts": 8,
    }
    dry = bpo.dry_run({}, tmp_path / "run", overrides=settings, progress=False)  # asks the endpoint, stores nothing
    assert not (tmp_path / "run").exists()
    assert (dry["counts"]["eval_calls"], dry["counts"]["eval_responses"]) == (33, 17)
    asked_before_the_run = len(server.asked)
    run = bpo.train({}, tmp_path / "run", overrides=settings, progress=False)
    result = json.loads((run.folder / "eval.json").read_text())
    distinct = {(e["prompt"], e["response"]) for view in (result, result["before"]) for e in view["examples"]}
    assert len(server.asked) - asked_before_the_run == 2 * len(distinct) + 1 <= dry["counts"]["eval_calls"]
    for view in (result, result["before"]):
        signs = [
            (len(e["response"]) > len(e["reference"])) - (len(e["response"]) < len(e["reference"]))
            for e in view["examples"]
        ]
        assert [e["score"] for e in view["examples"]] == signs and len(signs) == 8
        assert [e["reference_score"] for e in view["examples"]] == [-s for s in signs]
        assert view["strict_win_rate"] == pytest.approx(sum(s > 0 for s in signs) / 8)
        assert view["tie_rate"] == pytest.approx(sum(s == 0 for s in signs) / 8)
    every = [e["score"] for view in (result, result["before"]) for e in view["examples"]]
    assert {-1.0, 1.0} <= set(every)  # both outcomes occur, so the two orders were combined each way
    assert (run.folder / "llm-eval-judge.jsonl").is_file() and not (run.folder / STORE_NAME).exists()
    asked = len(server.asked)
    bpo.evaluate(run.folder, progress=False, write=False)
    assert len(server.asked) == asked  # every question read back from the run's store


def test_evaluation_judge_settings_are_checked():
    with pytest.raises(ConfigError, match="judge=llm needs llm_model"):
        config_from_dict(RunConfig, {"eval": {"judge": "llm"}})
    with pytest.raises(ConfigError, match="judge=llm needs llm_base_url"):
        config_from_dict(RunConfig, {"eval": {"judge": "llm", "llm_model": "m"}})
    with pytest.raises(ConfigError, match="llm_api_key_env takes the NAME"):
        config_from_dict(
            RunConfig,
            {"eval": {"judge": "llm", "llm_model": "m", "llm_base_url": "http://h/v1", "llm_api_key_env": "sk-1"}},
        )
    config_from_dict(RunConfig, {"eval": {"judge": "llm_local", "llm_model": "some/model"}})  # no URL needed


def test_an_evaluation_endpoint_s_error_names_the_evaluation_s_settings(server, tmp_path, monkeypatch):
    """eval.judge=llm at a base URL without the chat route: the question asked before the run starts gets HTTP
    404, and the error names eval.judge, eval.llm_base_url and eval.llm_model (the annotator, the task's rater,
    is not the one to fix); the run folder holds no evaluation."""
    settings = llm_evaluated(tmp_path, monkeypatch, server.url + "/elsewhere")
    with pytest.raises(LLMJudgeError) as err:
        bpo.train({}, tmp_path / "run", overrides=settings, progress=False)
    message = str(err.value)
    assert message.startswith("eval.judge=llm: request ") and "HTTP 404" in message
    assert "check eval.llm_base_url, usually ending in /v1, and eval.llm_model" in message
    assert "annotator." not in message
    assert not (tmp_path / "run" / "eval.json").exists()


def test_an_evaluation_judge_s_missing_key_and_bad_template_name_the_evaluation_s_settings(tmp_path, monkeypatch):
    """eval.judge=llm whose key variable is unset, then whose template lacks a placeholder: each refused at build
    time naming eval.llm_api_key_env / eval.llm_template (not the annotator's settings)."""
    from bpo.judging.llm import build_eval_llm_judge
    from bpo.loop.config import RunConfig

    monkeypatch.delenv("BPO_TEST_KEY", raising=False)
    ev = {"judge": "llm", "llm_model": "m", "llm_base_url": "http://127.0.0.1:9/v1", "llm_api_key_env": "BPO_TEST_KEY"}
    cfg = config_from_dict(RunConfig, {"eval": ev})
    with pytest.raises(LLMJudgeError) as err:
        build_eval_llm_judge(cfg.annotator, cfg.eval, None)
    assert str(err.value) == (
        "eval.judge=llm: eval.llm_api_key_env=BPO_TEST_KEY: that environment variable is not set; export it with "
        "the key, or set eval.llm_api_key_env=null for a server that needs no key"
    )
    template = tmp_path / "t.txt"
    template.write_text("{prompt} {response_a}")
    cfg = config_from_dict(RunConfig, {"eval": {**ev, "llm_api_key_env": None, "llm_template": str(template)}})
    with pytest.raises(LLMJudgeError, match=r"^eval.judge=llm: eval.llm_template: .*t.txt: lacks \{response_b\}"):
        build_eval_llm_judge(cfg.annotator, cfg.eval, None)
