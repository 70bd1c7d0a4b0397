"""LLM judges: a language model says which of two responses to a prompt is better.

    llm        any OpenAI-compatible chat-completions endpoint (vLLM, SGLang, llama.cpp's server, hosted
               APIs), asked through the official `openai` client (bpo[llm]); the answer must be exactly
               "A" or "B"
    llm_local  a transformers causal LM on this machine: its next-token log-probabilities of "A" and "B"
               after the same prompt

Both fill one prompt template (annotator.template; the default is prompts/pairwise.txt next to this file)
with the prompt and the two responses, and ask each pair in both orders, so that a judge that favours a
position cancels out (combine_orders): for the endpoint, two answers that disagree are a tie.

The endpoint's answers are stored as they come, one JSON line per request in RUN_DIR/llm-judge.jsonl,
keyed by a hash of the request: labels can be audited, and a resumed run reads the file back and asks
only what it does not hold. A failed request is retried with exponential backoff (a timeout, a dropped
connection, HTTP 408/409/429/5xx, an answer that is not exactly A or B); when its attempts are spent the
run stops with an LLMJudgeError naming the request, and the answers so far stay in the store.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

from bpo.common.jsonl import append_jsonl, read_log
from bpo.data.chat import prompt_text
from bpo.judging.annotators import AnnotatorConfig, Label
from bpo.judging.judges import JudgeError

STORE_NAME = "llm-judge.jsonl"  # in the run folder (bpo.run.rundir)
DEFAULT_TEMPLATE = Path(__file__).parent / "prompts" / "pairwise.txt"
PLACEHOLDERS = ("prompt", "response_a", "response_b")
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
RETRIED_STATUS = (408, 409, 429)  # and every 5xx: the server may answer next time; other 4xx will not


class LLMJudgeError(JudgeError):
    pass


# The settings an endpoint's errors name: the annotator's, or the evaluation judge's (eval.judge=llm)
ANNOTATOR_SETTINGS = {
    "kind": "annotator.kind",
    "base_url": "annotator.base_url",
    "model": "annotator.model",
    "api_key_env": "annotator.api_key_env",
    "template": "annotator.template",
}
EVAL_SETTINGS = {
    "kind": "eval.judge",
    "base_url": "eval.llm_base_url",
    "model": "eval.llm_model",
    "api_key_env": "eval.llm_api_key_env",
    "template": "eval.llm_template",
}


def read_template(path: str | None, setting: str = "annotator.template") -> str:
    """The prompt template's text (the file `setting` names, or the default): it must hold every placeholder."""
    file = Path(path) if path else DEFAULT_TEMPLATE
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise LLMJudgeError(f"{setting}: {file}: cannot read it ({err})") from None
    missing = [f"{{{name}}}" for name in PLACEHOLDERS if f"{{{name}}}" not in text]
    if missing:
        raise LLMJudgeError(
            f"{setting}: {file}: lacks {', '.join(missing)}; a template holds {{prompt}}, {{response_a}} "
            "and {response_b}"
        )
    return text


def render(template: str, prompt, response_a: str, response_b: str) -> str:
    """The template filled in one pass, so that a placeholder written inside a response is left as text."""
    values = {"prompt": prompt_text(prompt), "response_a": response_a, "response_b": response_b}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def both_orders(template: str, prompt, first: str, second: str) -> tuple[str, str]:
    """The question with `first` as response A, then with `second` as response A."""
    return render(template, prompt, first, second), render(template, prompt, second, first)


def combine_orders(a_when_first: float, a_when_second: float, tie_band: float = 0.0) -> Label:
    """The label of (first, second) from the judge's evidence that response A is the better one, asked with
    `first` shown as A and then with `second` shown as A. Half their difference is the evidence for `first`:
    a constant preference for one position cancels, swapping the responses negates it exactly, and identical
    responses give exactly 0. Evidence within tie_band of 0 is a tie. The scores are (evidence, -evidence)."""
    margin = (a_when_first - a_when_second) / 2
    return Label(None if abs(margin) <= tie_band else int(margin < 0), (margin, -margin))


def answer_vote(answer: str) -> float:
    """An endpoint's answer as evidence that response A is better: +1 for "A", -1 for "B"."""
    return 1.0 if answer == "A" else -1.0


def parse_answer(content) -> str | None:
    """ "A" or "B" when the model wrote exactly that (surrounding white space aside), else None (malformed)."""
    text = content.strip() if isinstance(content, str) else None
    return text if text in ("A", "B") else None


def request_key(body: dict) -> str:
    """The store's key of a request: a hash of everything sent but the connection (URL, key)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:32]


class AnswerStore:
    """RUN_DIR/llm-judge.jsonl: one line per answered request (its key, the request, the answer, the attempts
    and malformed answers before it), appended as each answer comes; read back whole when opened. A line cut
    short by a kill is dropped (bpo.common.jsonl.read_log), so that request is asked again."""

    def __init__(self, path: Path):
        self.path = path
        self.answers = {row["key"]: row["answer"] for row in read_log(path) if _is_answer(row)}
        self._lock = threading.Lock()  # answers arrive on several threads

    def add(self, key: str, row: dict) -> None:
        with self._lock:
            append_jsonl(self.path, {"key": key, **row})
            self.answers[key] = row["answer"]


def _is_answer(row: dict) -> bool:
    return isinstance(row.get("key"), str) and parse_answer(row.get("answer")) is not None


class EndpointAnnotator:
    """Labels pairs with a chat-completions endpoint (annotator.kind=llm); see the module docstring."""

    def __init__(self, cfg: AnnotatorConfig, store: Path | None, settings: dict[str, str] = ANNOTATOR_SETTINGS):
        self.cfg, self.template = cfg, read_template(cfg.template, settings["template"])
        self.settings = settings  # the names its errors give the settings (ANNOTATOR_SETTINGS or EVAL_SETTINGS)
        self.store = AnswerStore(store) if store is not None else None
        self.client = _openai_client(cfg, settings)

    def label(self, prompts: Sequence, first: Sequence[str], second: Sequence[str], seed: int = 0) -> list[Label]:
        questions = [both_orders(self.template, p, a, b) for p, a, b in zip(prompts, first, second)]
        about = [
            f"prompt {_short(prompt_text(p), 60)!r}, {which} response shown as A"
            for p in prompts
            for which in ("first", "second")
        ]
        answers = self.answers([text for pair in questions for text in pair], about)
        return [
            combine_orders(answer_vote(answers[2 * i]), answer_vote(answers[2 * i + 1])) for i in range(len(questions))
        ]

    def probe(self, prompts: Sequence, responses: Sequence[str]) -> None:
        """One question on a sample before the run starts (not stored: the run folder does not exist yet), so
        a wrong URL, model, key or template costs nothing; skipped by a resumed run the endpoint answered."""
        if self.store is not None and self.store.answers:
            return
        body = self.body(render(self.template, prompts[0], responses[0], responses[-1]))
        try:
            self.ask(request_key(body), body, "a held-out sample", stored=False)
        except LLMJudgeError as err:
            raise LLMJudgeError(f"{err} (asked before the run started)") from None

    def body(self, text: str) -> dict:
        """The request: one user turn, greedy, a few tokens for the one letter."""
        return {
            "model": self.cfg.model,
            "messages": [{"role": "user", "content": text}],
            "temperature": 0,
            "max_tokens": self.cfg.max_tokens,
        }

    def answers(self, texts: Sequence[str], about: Sequence[str]) -> list[str]:
        """The answer to each question: from the store, else asked (at most annotator.concurrency at a time)
        and stored; `about` says what each question is, for errors. Once a request fails for good no new one
        is sent; those under way finish and are stored, then the first error is raised."""
        bodies = {request_key(b): (b, what) for b, what in zip(map(self.body, texts), about)}
        known = self.store.answers if self.store is not None else {}
        missing = [key for key in bodies if key not in known]
        stop = threading.Event()

        def one(key: str) -> str | None:
            if stop.is_set():
                return None
            try:
                return self.ask_and_store(key, *bodies[key])
            except BaseException:
                stop.set()
                raise

        fresh: dict[str, str | None] = {}
        if missing:
            with ThreadPoolExecutor(max_workers=min(self.cfg.concurrency, len(missing))) as pool:
                futures = [pool.submit(one, key) for key in missing]
            failed = [f.exception() for f in futures if f.exception() is not None]
            if failed:
                raise failed[0]
            fresh = {key: f.result() for key, f in zip(missing, futures)}
        return [known.get(key) or fresh[key] for key in map(request_key, map(self.body, texts))]

    def ask_and_store(self, key: str, body: dict, about: str) -> str:
        started = time.perf_counter()
        answer, attempts, malformed = self.ask(key, body, about, stored=self.store is not None)
        if self.store is not None:
            row = {"request": body, "answer": answer, "attempts": attempts, "malformed": malformed}
            self.store.add(key, {**row, "seconds": round(time.perf_counter() - started, 3)})
        return answer

    def ask(self, key: str, body: dict, about: str, stored: bool) -> tuple[str, int, list]:
        """(answer, attempts, malformed answers before it): up to 1 + annotator.retries attempts, waiting
        annotator.backoff * 2^(i-1) seconds before the i-th retry."""
        import openai

        problems, malformed = [], []
        for attempt in range(self.cfg.retries + 1):
            if attempt:
                time.sleep(self.cfg.backoff * 2 ** (attempt - 1))
            try:
                completion = self.client.chat.completions.create(**body)
            except openai.APIStatusError as err:
                if not (err.status_code >= 500 or err.status_code in RETRIED_STATUS):
                    why = f"HTTP {err.status_code}: {_short(err.message)}"
                    raise self.failed(key, about, why, attempt + 1, stored) from None
                problems.append(f"HTTP {err.status_code}")
                continue
            except openai.APITimeoutError:
                problems.append(f"no answer within {self.cfg.request_timeout:g} s")
                continue
            except openai.APIError as err:  # connection refused or dropped, a body that is not a completion
                problems.append(f"{type(err).__name__}: {_short(str(err))}")
                continue
            content = completion.choices[0].message.content if completion.choices else None
            answer = parse_answer(content)
            if answer is not None:
                return answer, attempt + 1, malformed
            malformed.append(content)
            problems.append(f"malformed answer {_short(repr(content))} (expected exactly A or B)")
        said = list(dict.fromkeys(problems))  # the same problem on every attempt is said once, with its count
        why = "; ".join(p if problems.count(p) == 1 else f"{p} (x{problems.count(p)})" for p in said)
        raise self.failed(key, about, why, self.cfg.retries + 1, stored)

    def failed(self, key: str, about: str, why: str, attempts: int, stored: bool) -> LLMJudgeError:
        kept = f"; the answers so far are kept in {self.store.path}" if stored and self.store is not None else ""
        return LLMJudgeError(
            f"{self.settings['kind']}=llm: request {key} to {self.cfg.base_url} (model {self.cfg.model!r}; {about}) "
            f"failed after {attempts} attempt(s): {why}{_advice(why, self.settings)}{kept}"
        )


def _short(text: str, n: int = 80) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 3] + "..."


def _advice(why: str, settings: dict[str, str]) -> str:
    if why.startswith(("HTTP 401", "HTTP 403")):
        return f" (check the key in the variable {settings['api_key_env']} names)"
    if why.startswith("HTTP 404"):
        return f" (check {settings['base_url']}, usually ending in /v1, and {settings['model']})"
    if why.startswith("APIConnectionError"):
        return f" (nothing answered at that address: check {settings['base_url']} and that the server is up)"
    return ""


def _openai_client(cfg: AnnotatorConfig, settings: dict[str, str] = ANNOTATOR_SETTINGS):
    """The official client, its own retries off (ask retries, so every attempt is counted and logged)."""
    try:
        import openai
    except ImportError:
        raise LLMJudgeError("annotator.kind=llm needs the openai package: pip install 'bpo[llm]'") from None
    key = api_key(cfg, settings["api_key_env"])
    return openai.OpenAI(base_url=cfg.base_url, api_key=key, timeout=cfg.request_timeout, max_retries=0)


def api_key(cfg: AnnotatorConfig, setting: str = "annotator.api_key_env") -> str:
    """The key from the environment variable the setting `setting` names (read now, never written down);
    a server that needs none (vLLM, llama.cpp by default) gets a placeholder."""
    if not cfg.api_key_env:
        return "none"
    key = os.environ.get(cfg.api_key_env)
    if not key:
        raise LLMJudgeError(
            f"{setting}={cfg.api_key_env}: that environment variable is not set; export it with the "
            f"key, or set {setting}=null for a server that needs no key"
        )
    return key


class LocalLMAnnotator:
    """Labels pairs with a causal LM on this machine (annotator.kind=llm_local): for each order, the evidence
    for response A is log P(A) - log P(B) of the next token after the prompt, where each letter's probability
    sums its single-token spellings ("A", " A"). The prompt goes through the model's chat template as one user
    turn when it has one, else it is the text followed by a line 'Answer:'. One forward pass per question."""

    def __init__(self, cfg: AnnotatorConfig, device="cpu", dtype: str = "float32", settings=ANNOTATOR_SETTINGS):
        from bpo.model.loading import load_causal_lm, load_tokenizer, naming, resolve_folder

        self.cfg, self.template = cfg, read_template(cfg.template, settings["template"])
        with naming(settings["model"]):
            folder = resolve_folder(cfg.model)  # a local folder or a Hub id's cached snapshot
            self.model = load_causal_lm(folder, dtype).eval().to(device)
            self.tokenizer = load_tokenizer(folder)
        self.letters = [letter_ids(self.tokenizer, letter, f"{settings['model']}={cfg.model}") for letter in "AB"]
        self.chat = bool(getattr(self.tokenizer, "chat_template", None))

    def label(self, prompts: Sequence, first: Sequence[str], second: Sequence[str], seed: int = 0) -> list[Label]:
        labels = []
        for p, a, b in zip(prompts, first, second):
            when_first, when_second = map(self.a_evidence, both_orders(self.template, p, a, b))
            labels.append(combine_orders(when_first, when_second, self.cfg.tie_band))
        return labels

    def probe(self, prompts: Sequence, responses: Sequence[str]) -> None:
        self.a_evidence(render(self.template, prompts[0], responses[0], responses[-1]))

    def a_evidence(self, text: str) -> float:
        import torch

        from bpo.data.tokens import encode_prompt

        ids = encode_prompt(self.tokenizer, text if self.chat else text + "\nAnswer:", self.chat)
        with torch.no_grad():
            logits = self.model(input_ids=torch.tensor([ids], device=self.model.device)).logits[0, -1].float()
        a, b = (torch.logsumexp(logits[spellings], 0) for spellings in self.letters)  # the normaliser cancels
        return float(a - b)


def letter_ids(tokenizer, letter: str, name: str) -> list[int]:
    """The token ids that spell `letter` alone, bare or after a space (the tokenizer's own spellings)."""
    found = []
    for spelling in (letter, " " + letter):
        ids = tokenizer(spelling, add_special_tokens=False)["input_ids"]
        if len(ids) == 1 and ids[0] != tokenizer.unk_token_id and ids[0] not in found:
            found.append(ids[0])
    if not found:
        raise LLMJudgeError(f"{name}: its tokenizer has no single token for {letter!r}")
    return found


def build_llm_annotator(
    cfg: AnnotatorConfig, store: Path | None, device="cpu", dtype: str = "float32", settings=ANNOTATOR_SETTINGS
):
    """The annotator of annotator.kind=llm (answers stored in `store`) or llm_local; `settings`: the names its
    errors give the endpoint's settings."""
    if cfg.kind == "llm":
        return EndpointAnnotator(cfg, store, settings)
    return LocalLMAnnotator(cfg, device, dtype, settings)


# ------------------------------------------------------------------------------------------ as the evaluation judge

EVAL_STORE_NAME = "llm-eval-judge.jsonl"  # in the run folder, apart from the annotator's answers


class AgainstReferences:
    """An LLM pairwise judge as the evaluation judge (eval.judge=llm or llm_local): each held-out response is
    asked against its reference, in both orders (combine_orders). The response gets its evidence e of being
    the better one and the reference -e, so the strict win rate counts e > 0 and a tie is e = 0 (the endpoint's
    two answers disagreed). The mean "score" is then the mean evidence against the references, in [-1, 1] for
    an endpoint: it is comparable between evaluations of the same task and judge, not with a scorer's."""

    def __init__(self, annotator):
        self.annotator = annotator

    def against_references(self, prompts: Sequence, responses: Sequence[str], references: Sequence[str]):
        labels = self.annotator.label(prompts, responses, references)
        return [lab.scores[0] for lab in labels], [lab.scores[1] for lab in labels]

    def probe(self, prompts: Sequence, responses: Sequence[str]) -> None:
        self.annotator.probe(prompts, responses)

    def label(self, prompts: Sequence, first: Sequence[str], second: Sequence[str], seed: int = 0) -> list[Label]:
        """Which of two responses is better, asked directly (e.g. a held-out preference file of SFT samples)."""
        return self.annotator.label(prompts, first, second, seed)

    def __call__(self, prompts, responses):
        raise LLMJudgeError(
            "eval.judge=llm compares a response with its reference; it cannot score one text on its own"
        )


def eval_llm_settings(annotator: AnnotatorConfig, ev) -> AnnotatorConfig:
    """The evaluation judge's LLM settings: its own judge kind, model, endpoint, key variable and template
    (eval.llm_*), the annotator section's request limits (concurrency, timeouts, retries, backoff, max_tokens)."""
    from dataclasses import replace

    return replace(
        annotator,
        kind=ev.judge,
        judge="task",
        timeout=None,
        model=ev.llm_model,
        base_url=ev.llm_base_url,
        api_key_env=ev.llm_api_key_env,
        template=ev.llm_template,
        tie_band=0.0,
    )


def build_eval_llm_judge(annotator: AnnotatorConfig, ev, store: Path | None, device="cpu", dtype: str = "float32"):
    """AgainstReferences over the LLM that eval.judge names; errors say which settings are the evaluation's."""
    try:
        settings = eval_llm_settings(annotator, ev)
        return AgainstReferences(build_llm_annotator(settings, store, device, dtype, EVAL_SETTINGS))
    except LLMJudgeError as err:
        raise LLMJudgeError(f"eval.judge={ev.judge}: {err}") from None  # err names the eval.llm_* setting
