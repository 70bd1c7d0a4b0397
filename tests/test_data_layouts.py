"""Preference and task data as people have it: plain and conversational JSONL, TRL's implicit prompt,
Parquet and `datasets` folders. Each layout reads back what was written; each malformed variant is
refused naming the file, the line (or table row) and the field; a conversation reaches the model
whole (system prompt and earlier turns, through the chat template); `sft.data` fine-tunes on a
preference file's chosen responses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tinytask import run_args, write_task

import bpo.loop.build
from bpo.cli import main
from bpo.common.jsonl import DataFileError
from bpo.data.chat import prompt_text
from bpo.data.prefdata import PreferenceRecord, read_preferences, write_preferences
from bpo.tasks.files import load_task_file

pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402

TALK = [  # a system prompt, two earlier turns, the last user turn
    {"role": "system", "content": "w50 w51"},
    {"role": "user", "content": "w52"},
    {"role": "assistant", "content": "w53 w54"},
    {"role": "user", "content": "w55 w56"},
]
TALKS = [
    PreferenceRecord("a", TALK, "w40 w41", "w10"),
    PreferenceRecord("b", [{"role": "user", "content": "w57"}], "w42", "w11 w12"),
]
PLAIN = [PreferenceRecord("c", "w5 w6", "w40", "w10"), PreferenceRecord("7", "w8", "w43 w44", "w13")]


def rows_of(records, layout: str) -> list[dict]:
    """The rows a user's own tool would hold, in TRL's layouts."""
    out = []
    for r in records:
        said = [{"role": "assistant", "content": r.chosen}], [{"role": "assistant", "content": r.rejected}]
        if layout == "implicit":
            out.append({"id": r.id, "chosen": r.prompt + said[0], "rejected": r.prompt + said[1]})
        elif layout == "conversational":
            out.append({"id": r.id, "prompt": r.prompt, "chosen": said[0], "rejected": said[1]})
        else:
            out.append({"id": r.id, "prompt": r.prompt, "chosen": r.chosen, "rejected": r.rejected})
    return out


def save_parquet(path: Path, rows: list[dict]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def save_dataset(path: Path, rows: list[dict]) -> Path:
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list(rows).save_to_disk(str(path))
    return path


# ------------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("layout", ["plain", "conversational", "implicit"])
def test_jsonl_layouts_round_trip(tmp_path, layout):
    records = PLAIN if layout == "plain" else TALKS
    write_preferences(tmp_path / "p.jsonl", records, layout=layout)
    assert read_preferences(tmp_path / "p.jsonl") == records
    assert [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()] == rows_of(records, layout)


@pytest.mark.parametrize("save", [save_parquet, save_dataset], ids=["parquet", "datasets"])
@pytest.mark.parametrize("layout", ["plain", "conversational", "implicit"])
def test_tables_round_trip(tmp_path, save, layout):
    """Written by pyarrow / datasets' save_to_disk, read back as the same records (rows numbered from 1)."""
    records = PLAIN if layout == "plain" else TALKS
    path = save(tmp_path / ("p.parquet" if save is save_parquet else "p"), rows_of(records, layout))
    back = read_preferences(path)
    assert back == records and [r.line for r in back] == [1, 2]


def test_the_plain_layout_keeps_a_conversation_prompt_as_messages(tmp_path):
    """(as `bpo annotate --export` writes stored pairs): texts stay texts, a conversation stays whole."""
    write_preferences(tmp_path / "p.jsonl", TALKS + PLAIN)
    assert read_preferences(tmp_path / "p.jsonl") == TALKS + PLAIN
    assert json.loads((tmp_path / "p.jsonl").read_text().splitlines()[0]) == {
        "id": "a",
        "prompt": TALK,
        "chosen": "w40 w41",
        "rejected": "w10",
    }


def test_task_file_with_conversation_prompts_from_parquet_and_datasets(tmp_path):
    """A `prompt` message list is a conversation (not a Python list's repr); a reference may be one
    assistant message; held-out leakage is found through the conversation's text."""
    save_parquet(tmp_path / "train.parquet", [{"prompt": TALK}, {"prompt": [{"role": "user", "content": "w9"}]}])
    save_dataset(
        tmp_path / "eval",
        [{"prompt": [{"role": "user", "content": "w20"}], "reference": [{"role": "assistant", "content": "w40"}]}],
    )
    (tmp_path / "task.yaml").write_text("train: train.parquet\neval: eval\n")
    task = load_task_file(tmp_path / "task.yaml")
    assert task.train[0].prompt == TALK and task.eval[0].reference == "w40"
    assert prompt_text(task.train[0].prompt) == "system: w50 w51\n\nuser: w52\n\nassistant: w53 w54\n\nuser: w55 w56"
    save_parquet(tmp_path / "train.parquet", [{"prompt": [{"role": "user", "content": "W20 "}]}])
    with pytest.raises(DataFileError, match="1 eval prompt"):
        load_task_file(tmp_path / "task.yaml")


# ------------------------------------------------------------- the paper data sets' layouts

U1, A1, U2 = TALK[1], TALK[2], TALK[3]  # user, assistant, user: a prompt of two turns and a question


def said(text: str) -> dict:
    return {"role": "assistant", "content": text}


def test_whole_conversations_next_to_a_text_prompt_read_as_the_iopo_data_sets_hold_them(tmp_path):
    """argilla/distilabel-capybara-dpo-7k-binarized, mlabonne/orpo-dpo-mix-40k: `prompt` a text, `chosen` and
    `rejected` the whole conversation each. The prompt is the messages before the final assistant message (the same
    in both), the responses those final messages; the text `prompt` is not read."""
    rows = [
        {"prompt": "w55 w56", "chosen": [U1, A1, U2, said("w40 w41")], "rejected": [U1, A1, U2, said("w10")]},
        {"prompt": "w57", "chosen": [TALK[0], U1, said("w42")], "rejected": [TALK[0], U1, said("w11 w12")]},
    ]
    path = save_parquet(tmp_path / "iopo.parquet", rows)
    assert read_preferences(path) == [
        PreferenceRecord("line-1", [U1, A1, U2], "w40 w41", "w10"),
        PreferenceRecord("line-2", [TALK[0], U1], "w42", "w11 w12"),
    ]


@pytest.mark.parametrize(
    "chosen, rejected, message",
    [
        (
            [U1, A1, U2, said("w40")],
            [U1, said("w53"), U2, said("w10")],
            ":1: rejected[1]: differs from chosen[1]; the messages before the final assistant message (the prompt) "
            "must be the same in chosen and rejected",
        ),
        (
            [U1, A1, U2, said("w40"), said("w41")],
            [U1, A1, U2, said("w10")],
            ":1: chosen: the conversation ends with 2 assistant messages in a row; the response is one assistant "
            "message (merge them, or keep the last)",
        ),
        (
            [U1, A1, U2, said("w40")],
            [U1, A1, U2],
            ":1: rejected: the conversation ends with a 'user' message, not the assistant's response",
        ),
    ],
    ids=["prompts-differ", "two-trailing-replies", "no-reply"],
)
def test_whole_conversations_that_do_not_split_into_one_prompt_and_two_replies_are_refused(
    tmp_path, chosen, rejected, message
):
    path = tmp_path / "iopo.jsonl"
    path.write_text(json.dumps({"prompt": "w55 w56", "chosen": chosen, "rejected": rejected}) + "\n")
    with pytest.raises(DataFileError) as err:
        read_preferences(path)
    assert str(err.value) == f"{path}{message}"


HH_TEXT = "\n\nHuman: w52\n\nAssistant: w53 w54\n\nHuman: w55 w56\n\nAssistant: w40 w41"


@pytest.mark.parametrize("chat_template", [False, True])
def test_layout_chosen_reads_anthropic_hh_rows(tmp_path, chat_template):
    """`layout: chosen`: the reference is the final assistant reply of `chosen`, the prompt the conversation
    before it, in each of HH's layouts: Anthropic/hh-rlhf's raw text (the text up to the final "Assistant:", or
    its turns as messages with the chat template), a whole conversation as messages, and TRL's conversational
    copy (trl-lib/hh-rlhf-helpful-base: `prompt` messages, `chosen` one assistant message). `rejected` is not
    read."""
    raw = [{"chosen": HH_TEXT, "rejected": HH_TEXT[:-6] + "w10"}]
    whole = [{"chosen": [U2, A1, U1, said("w42")], "rejected": [U2, A1, U1, said("w11")]}]
    trl = [{"prompt": [TALK[0], U2], "chosen": [said("w43 w44")], "rejected": [said("w12")]}]
    for name, rows in (("raw", raw), ("whole", whole), ("trl", trl)):
        save_parquet(tmp_path / f"{name}.parquet", rows)
    (tmp_path / "task.yaml").write_text(
        f"layout: chosen\nchat_template: {str(chat_template).lower()}\ntrain: raw.parquet\neval: whole.parquet\n"
        "dev: trl.parquet\n"
    )
    task = load_task_file(tmp_path / "task.yaml")
    raw_prompt = (
        [U1, A1, U2] if chat_template else "\n\nHuman: w52\n\nAssistant: w53 w54\n\nHuman: w55 w56\n\nAssistant:"
    )
    assert [(e.prompt, e.reference) for e in task.train] == [(raw_prompt, "w40 w41")]
    assert [(e.prompt, e.reference) for e in task.eval] == [([U2, A1, U1], "w42")]
    assert [(e.prompt, e.reference) for e in task.dev] == [([TALK[0], U2], "w43 w44")]
    assert task.demonstrations == task.train and task.chat_template is chat_template


def test_layout_chosen_refusals(tmp_path):
    (tmp_path / "eval.jsonl").write_text(json.dumps({"chosen": [U2, said("w40")]}) + "\n")
    (tmp_path / "task.yaml").write_text("layout: chosen\ntrain: train.jsonl\neval: eval.jsonl\n")
    for row, message in (
        (
            {"chosen": HH_TEXT + "\n\nAssistant: w41"},
            "train.jsonl:1: chosen: the conversation ends with 2 assistant messages in a row; the response is one "
            "assistant message (merge them, or keep the last)",
        ),
        (
            {"chosen": "\n\nHuman: w52\n\nAssistant: "},
            "train.jsonl:1: chosen: the final assistant turn is empty (it is the reference)",
        ),
        ({"chosen": "w40", "rejected": "w10"}, "train.jsonl:1: prompt: missing field (have: chosen, rejected)"),
        ({"reference": "w40"}, "train.jsonl:1: chosen: missing field (have: reference)"),
    ):
        (tmp_path / "train.jsonl").write_text(json.dumps(row) + "\n")
        with pytest.raises(DataFileError) as err:
            load_task_file(tmp_path / "task.yaml")
        assert str(err.value) == f"{tmp_path}/{message}"
    (tmp_path / "task.yaml").write_text("layout: chosen\nformat: hh\ntrain: train.jsonl\neval: eval.jsonl\n")
    with pytest.raises(
        DataFileError,
        match="task.yaml: layout: chosen takes the prompts from the rows as they are; it "
        "goes with format plain, not hh",
    ):
        load_task_file(tmp_path / "task.yaml")
    (tmp_path / "task.yaml").write_text("layout: pairs\ntrain: train.jsonl\neval: eval.jsonl\n")
    with pytest.raises(DataFileError, match="task.yaml: layout: 'pairs' is not one of reference, chosen"):
        load_task_file(tmp_path / "task.yaml")


# ------------------------------------------------------------------------------- malformed rows


@pytest.mark.parametrize("save", [save_parquet, save_dataset], ids=["parquet", "datasets"])
@pytest.mark.parametrize(
    "rows, message",
    [
        (
            [{"prompt": "w5", "chosen": "w40", "rejected": "w10"}, {"prompt": "w6", "chosen": " ", "rejected": "w10"}],
            ":2: chosen: empty string",
        ),
        ([{"prompt": "w5", "rejected": "w10"}], ":1: chosen: missing field (have: prompt, rejected)"),
        (
            [
                {"prompt": "w5", "chosen": "w40", "rejected": "w10"},
                {"prompt": None, "chosen": "w40", "rejected": "w10"},
            ],
            ":2: prompt: expected a string, got NoneType",
        ),
        ([{"prompt": "w5", "chosen": 3, "rejected": "w10"}], ":1: chosen: expected a string, got int"),
        (
            [
                {
                    "prompt": [{"role": "user", "content": "w5"}],
                    "chosen": [{"role": "assistant", "content": "w40"}],
                    "rejected": [{"role": "human", "content": "w10"}],
                }
            ],
            ":1: rejected[0]: role: 'human' is not one of system, user, assistant, tool",
        ),
        (
            [
                {
                    "chosen": [{"role": "user", "content": "w5"}, {"role": "assistant", "content": "w40"}],
                    "rejected": [{"role": "user", "content": "w6"}, {"role": "assistant", "content": "w10"}],
                }
            ],
            ":1: rejected[0]: differs from chosen[0]; the messages before the final assistant message (the prompt) "
            "must be the same in chosen and rejected",
        ),
        (
            [
                {"id": 1, "prompt": "w5", "chosen": "w40", "rejected": "w10"},
                {"id": 1, "prompt": "w6", "chosen": "w41", "rejected": "w10"},
            ],
            ":2: id: duplicate id '1'",
        ),
    ],
    ids=["empty", "missing", "null", "int", "role", "implicit", "duplicate-id"],
)
def test_malformed_table_rows_are_refused_with_file_row_and_field(tmp_path, save, rows, message):
    path = save(tmp_path / ("p.parquet" if save is save_parquet else "p"), rows)
    with pytest.raises(DataFileError) as err:
        read_preferences(path)
    assert str(err.value).startswith(f"{path}{message}"), str(err.value)


def test_broken_tables_are_refused_naming_the_file(tmp_path):
    (tmp_path / "junk.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataFileError, match=r"junk.parquet: not a readable Parquet file"):
        read_preferences(tmp_path / "junk.parquet")
    save_parquet(tmp_path / "empty.parquet", [])
    with pytest.raises(DataFileError, match=r"empty.parquet: empty table \(no rows\)"):
        read_preferences(tmp_path / "empty.parquet")
    datasets = pytest.importorskip("datasets")
    whole = datasets.Dataset.from_list(rows_of(PLAIN, "plain"))
    datasets.DatasetDict({"train": whole, "test": whole}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(
        DataFileError, match=r"dd: a DatasetDict with splits train, test; give one split's folder, e.g. .*dd/train"
    ):
        read_preferences(tmp_path / "dd")
    assert read_preferences(tmp_path / "dd" / "train") == PLAIN
    save_dataset(tmp_path / "gone", rows_of(PLAIN, "plain"))
    next((tmp_path / "gone").glob("*.arrow")).unlink()
    with pytest.raises(DataFileError, match=r"gone/state.json: lists data-00000-of-00001.arrow, which is missing"):
        read_preferences(tmp_path / "gone")


def test_malformed_task_rows_are_refused(tmp_path):
    (tmp_path / "eval.jsonl").write_text(json.dumps({"prompt": "w20", "reference": "w40"}) + "\n")
    (tmp_path / "task.yaml").write_text("train: train.jsonl\neval: eval.jsonl\nformat: hh\n")
    (tmp_path / "train.jsonl").write_text(json.dumps({"prompt": TALK}) + "\n")
    with pytest.raises(
        DataFileError,
        match=r"train.jsonl:1: prompt: expected a string \(a message list is a conversation: use format plain\)",
    ):
        load_task_file(tmp_path / "task.yaml")
    (tmp_path / "task.yaml").write_text("train: train.jsonl\neval: eval.jsonl\n")
    (tmp_path / "train.jsonl").write_text(json.dumps({"prompt": TALK[:3]}) + "\n")
    with pytest.raises(DataFileError, match=r"train.jsonl:1: prompt: the conversation ends with an assistant message"):
        load_task_file(tmp_path / "task.yaml")
    (tmp_path / "train.jsonl").write_text(json.dumps({"prompt": TALK, "reference": TALK[2:]}) + "\n")
    with pytest.raises(
        DataFileError, match=r"train.jsonl:1: reference: a conversational response is one assistant message, got 2"
    ):
        load_task_file(tmp_path / "task.yaml")


# ------------------------------------------------------------ a conversation reaches the model whole

CHAT_TEMPLATE = (  # roles as words of the tiny vocabulary, so the rendered ids can be read back
    "{% for m in messages %}{{ {'system': 'w1', 'user': 'w2', 'assistant': 'w3'}[m['role']] }} {{ m['content'] }} {% "
    "endfor %}"
    "{% if add_generation_prompt %}w3{% endif %}"
)


@pytest.fixture(scope="module")
def chat_task(tmp_path_factory):
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("chat")
    write_task(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder / "model")
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(folder / "model")
    return folder


def test_a_conversation_with_a_system_prompt_and_two_earlier_turns_reaches_the_model_whole(
    chat_task, tmp_path, monkeypatch
):
    """Offline DPO on an implicit-prompt Parquet file whose pairs share TALK: every training row the
    model's embedding receives for pair `a` starts with the ids of the whole conversation rendered by the
    chat template, `w1 w50 w51 w2 w52 w3 w53 w54 w2 w55 w56 w3`, and goes on with the response."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(chat_task / "model")
    expected = tokenizer.apply_chat_template(TALK, add_generation_prompt=True, tokenize=True)
    expected = list(expected["input_ids"] if hasattr(expected, "keys") else expected)
    assert tokenizer.decode(expected) == "w1 w50 w51 w2 w52 w3 w53 w54 w2 w55 w56 w3"  # nothing dropped

    seen: list[list[int]] = []
    load = bpo.loop.build.load_causal_lm

    def recording(*args, **kwargs):
        model = load(*args, **kwargs)
        model.get_input_embeddings().register_forward_pre_hook(lambda module, inputs: seen.extend(inputs[0].tolist()))
        return model

    monkeypatch.setattr(bpo.loop.build, "load_causal_lm", recording)
    records = [
        PreferenceRecord(f"r{i}", TALK if i == 0 else [{"role": "user", "content": f"w{i + 4}"}], "w40 w41", "w10")
        for i in range(24)
    ]
    prefs = save_parquet(tmp_path / "prefs.parquet", rows_of(records, "implicit"))
    out = tmp_path / "run"
    assert (
        main(
            run_args(
                chat_task, out, "method=offline_dpo", "schedule.phases=1", f"data.pairs={prefs}", "eval.before=false"
            )
        )
        == 0
    )
    (pair,) = [
        json.loads(line) for line in (out / "pairs" / "phase-000.jsonl").read_text().splitlines() if '"r0"' in line
    ]
    assert pair["prompt"] == TALK and pair["prompt_ids"] == expected
    chosen = expected + pair["chosen_ids"]
    assert any(row[: len(chosen)] == chosen for row in seen)  # the model saw the whole conversation and the response


def test_sampled_task_with_conversation_prompts_renders_them_for_the_model_and_as_text_for_the_judge(
    chat_task, tmp_path, monkeypatch
):
    """A task file whose prompts are message lists: sampling starts from the rendered conversation, and
    the judge (a Python function of text) gets the conversation as text, never a list."""
    import tinytask

    judged: list = []

    def judge(prompts, responses):
        judged.extend(prompts)
        return tinytask.score(prompts, responses)

    monkeypatch.setattr(tinytask, "talk_judge", judge, raising=False)
    talks = [{"prompt": [*TALK[:3], {"role": "user", "content": f"w{i + 4} w{i + 5}"}]} for i in range(16)]
    (chat_task / "talk.jsonl").write_text("\n".join(json.dumps(t) for t in talks) + "\n")
    (chat_task / "talk.yaml").write_text("train: talk.jsonl\neval: eval.jsonl\njudge: tinytask:talk_judge\n")
    out = tmp_path / "run"
    args = [
        a.replace("task.yaml", "talk.yaml")
        for a in run_args(chat_task, out, "schedule.steps=2", "schedule.phases=1", "eval.kl=false")
    ]
    assert main(args) == 0
    pairs = [json.loads(line) for line in (out / "pairs" / "phase-000.jsonl").read_text().splitlines()]
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(chat_task / "model")
    for pair in pairs:
        assert pair["prompt"][:3] == TALK[:3]
        assert tokenizer.decode(pair["prompt_ids"]).startswith("w1 w50 w51 w2 w52 w3 w53 w54 w2 ")
    assert judged and all(isinstance(p, str) for p in judged)
    assert any(p.startswith("system: w50 w51\n\nuser: w52\n\nassistant: w53 w54\n\nuser: ") for p in judged)


# ----------------------------------------------------------------------------------- sft.data


def test_sft_data_fine_tunes_on_the_chosen_responses(chat_task, tmp_path):
    """SFT on a preference file raises log pi(chosen | prompt) of its pairs far more than
    log pi(rejected | prompt): the stage trained on the chosen responses only. The run then no longer
    needs the file: `bpo eval` loads the saved SFT base after the file moved away."""
    from bpo.data.tokens import encode_prompt, encode_response
    from bpo.model.loading import load_causal_lm, load_tokenizer
    from bpo.model.scoring import response_logprobs

    records = [
        PreferenceRecord(f"r{i}", f"w{i % 20 + 4} w{i % 7 + 4}", "w40 w41 w42", "w10 w11 w12") for i in range(32)
    ]
    prefs = tmp_path / "prefs.jsonl"
    write_preferences(prefs, records)
    out = tmp_path / "run"
    assert (
        main(
            run_args(
                chat_task,
                out,
                f"sft.data={prefs}",
                "sft.steps=20",
                "sft.lr=0.01",
                "sft.batch_size=8",
                "schedule.steps=2",
                "schedule.phases=1",
                "eval.prompts=2",
            )
        )
        == 0
    )
    tok = load_tokenizer(chat_task / "model")
    prompts = [encode_prompt(tok, r.prompt) for r in records[:8]]

    def mean_logp(folder, side):
        model = load_causal_lm(folder)
        return (
            response_logprobs(
                model, prompts, [encode_response(tok, getattr(r, side)) for r in records[:8]], tok.pad_token_id
            )
            .mean()
            .item()
        )

    gain_chosen = mean_logp(out / "sft-base", "chosen") - mean_logp(chat_task / "model", "chosen")
    gain_rejected = mean_logp(out / "sft-base", "rejected") - mean_logp(chat_task / "model", "rejected")
    print(f"log-prob gain: chosen {gain_chosen:.2f}, rejected {gain_rejected:.2f}")
    assert gain_chosen > 5.0 and gain_chosen > gain_rejected + 5.0, (gain_chosen, gain_rejected)
    prefs.rename(tmp_path / "moved.jsonl")
    assert main(["eval", str(out), "eval.kl=false", "--quiet"]) == 0


def test_sft_data_is_refused_without_sft_steps_or_with_held_out_prompts(chat_task, tmp_path, capsys):
    prefs = tmp_path / "prefs.jsonl"
    eval_prompt = json.loads((chat_task / "eval.jsonl").read_text().splitlines()[0])["prompt"]
    write_preferences(prefs, [PreferenceRecord("x", eval_prompt, "w40", "w10")])
    assert main(run_args(chat_task, tmp_path / "a", f"sft.data={prefs}")) == 2
    assert f"sft: steps is 0, so sft.data={prefs} would not be used; set sft.steps" in capsys.readouterr().err
    assert main(run_args(chat_task, tmp_path / "b", f"sft.data={prefs}", "sft.steps=2")) == 2
    assert f"{prefs}: 1 eval prompt(s) are also sft.data prompts" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_tables_without_pyarrow_are_refused_with_the_extra_named(tmp_path, monkeypatch):
    import sys

    path = save_parquet(tmp_path / "p.parquet", rows_of(PLAIN, "plain"))
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if not installed
    with pytest.raises(
        DataFileError,
        match=r"p.parquet: reading Parquet files and datasets folders needs pyarrow: pip install 'bpo\[data\]'",
    ):
        read_preferences(path)
