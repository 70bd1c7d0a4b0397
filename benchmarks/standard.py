"""The standard benchmark configuration (issue 12), built locally so results compare with other tools.

    policy    a Llama: 4 layers, width 256, 4 heads, MLP 1024, context 256, random weights (seed 0)
    tokenizer byte-level BPE, vocabulary 4096, trained here on the chatterbot corpus (every language)
    judge     a reward model of the same architecture (LlamaForSequenceClassification, seed 1)
    prompts   64 tokens each (63 corpus tokens after BOS), decoded to text; eval references likewise
    run       2 responses of 64 new tokens per prompt, 8 prompts per training step, DPO, LoRA r8 on
              the attention projections, float32, 2 threads

`--model smollm2` swaps in SmolLM2-135M-Instruct (bpo.model.pretrained) and a reward model of its
architecture (its weights, a fresh scalar head, seed 1); prompts are the same texts cut to 64 of its tokens.
A random policy almost never samples EOS (1 in 4096 per token), so every response is 64 tokens long:
the work per pair is the same in every tool and every run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

VOCAB, LAYERS, WIDTH, HEADS, MLP, CONTEXT = 4096, 4, 256, 4, 1024, 256
PROMPT_TOKENS, NEW_TOKENS, PROMPTS_PER_STEP, LORA_RANK = 64, 64, 8, 8
TRAIN_PROMPTS, EVAL_PROMPTS = 1024, 64


@dataclass(frozen=True)
class Setup:
    policy: Path  # a transformers causal-LM folder with its tokenizer
    reward: Path  # a sequence-classification folder with its tokenizer
    task: Path  # a bpo task file (train.jsonl, eval.jsonl, the reward model as judge)
    prompts: list[str]  # the training prompts, in file order


def corpus_texts() -> list[str]:
    """Every utterance of the chatterbot corpus (all languages), in a fixed order."""
    import chatterbot_corpus
    import yaml

    root = Path(chatterbot_corpus.__file__).parent / "data"
    texts = []
    for path in sorted(root.rglob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for conversation in data.get("conversations", []):
            texts += [str(t) for t in conversation if isinstance(t, (str, int, float))]
    return texts


def train_tokenizer(texts: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=["<pad>", "<bos>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(texts, trainer)
    tk.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>")


def windows(tokenizer, texts: list[str], length: int, count: int) -> list[str]:
    """`count` texts of about `length` tokens each (BOS included): consecutive windows of the corpus's token stream."""
    stream: list[int] = []
    for t in texts:
        stream += tokenizer(t + "\n", add_special_tokens=False)["input_ids"]
    body = length - 1
    if len(stream) < count * body:
        stream = stream * (count * body // len(stream) + 1)
    return [tokenizer.decode(stream[i * body : (i + 1) * body]) for i in range(count)]


def _llama_config(tokenizer):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=WIDTH,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS,
        intermediate_size=MLP,
        max_position_embeddings=CONTEXT,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=1,
    )


def _write_task(folder: Path, prompts: list[str], references: list[str], held_out: list[str], reward: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "train.jsonl", "w") as f:
        for p in prompts:
            f.write(json.dumps({"prompt": p}) + "\n")
    with open(folder / "eval.jsonl", "w") as f:
        for p, r in zip(held_out, references):
            f.write(json.dumps({"prompt": p, "reference": r}) + "\n")
    task = folder / "task.yaml"
    task.write_text(f"train: train.jsonl\neval: eval.jsonl\njudge: {reward}\nchat_template: false\nname: bench\n")
    return task


def build_standard(folder: Path) -> Setup:
    """The standard configuration under `folder` (built once; a later call reuses it)."""
    from transformers import LlamaForCausalLM, LlamaForSequenceClassification

    policy, reward = folder / "policy", folder / "reward"
    if not (folder / "task" / "task.yaml").is_file():
        texts = corpus_texts()
        tokenizer = train_tokenizer(texts)
        config = _llama_config(tokenizer)
        torch.manual_seed(0)
        LlamaForCausalLM(config).save_pretrained(policy)
        tokenizer.save_pretrained(policy)
        torch.manual_seed(1)
        LlamaForSequenceClassification(config).save_pretrained(reward)
        tokenizer.save_pretrained(reward)
        chunks = windows(tokenizer, texts, PROMPT_TOKENS, TRAIN_PROMPTS + 2 * EVAL_PROMPTS)
        held_out, references = chunks[TRAIN_PROMPTS::2], chunks[TRAIN_PROMPTS + 1 :: 2]
        _write_task(folder / "task", chunks[:TRAIN_PROMPTS], references, held_out, reward.resolve())
    return Setup(
        policy.resolve(), reward.resolve(), (folder / "task" / "task.yaml").resolve(), _read_prompts(folder / "task")
    )


def build_smollm2(folder: Path) -> Setup:
    """SmolLM2-135M-Instruct, a reward model of its architecture, the standard prompts cut to 64 of its tokens."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from bpo.loop.build import cache_dir
    from bpo.model.pretrained import smollm2_folder

    policy = smollm2_folder(cache_dir(), progress=False)
    reward = folder / "smollm2-reward"
    if not (folder / "smollm2-task" / "task.yaml").is_file():
        tokenizer = AutoTokenizer.from_pretrained(policy)
        torch.manual_seed(1)
        model = AutoModelForSequenceClassification.from_pretrained(policy, num_labels=1)  # a fresh scalar head
        model.config.pad_token_id = tokenizer.pad_token_id
        model.save_pretrained(reward)
        tokenizer.save_pretrained(reward)
        standard = build_standard(folder)
        cut = lambda t: tokenizer.decode(tokenizer(t, add_special_tokens=False)["input_ids"][:PROMPT_TOKENS])  # noqa: E731
        evals = [json.loads(line) for line in (standard.task.parent / "eval.jsonl").read_text().splitlines()]
        _write_task(
            folder / "smollm2-task",
            [cut(p) for p in standard.prompts],
            [cut(e["reference"]) for e in evals],
            [cut(e["prompt"]) for e in evals],
            reward.resolve(),
        )
    return Setup(
        Path(policy).resolve(),
        reward.resolve(),
        (folder / "smollm2-task" / "task.yaml").resolve(),
        _read_prompts(folder / "smollm2-task"),
    )


def _read_prompts(task_folder: Path) -> list[str]:
    return [json.loads(line)["prompt"] for line in (task_folder / "train.jsonl").read_text().splitlines()]


def build(model: str, folder: Path) -> Setup:
    return build_smollm2(folder) if model == "smollm2" else build_standard(folder)


def peak_rss_mib() -> float:
    """This process's peak resident memory (Linux reports ru_maxrss in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def matmul_flops(n: int = 1024, seconds: float = 2.0) -> float:
    """FLOP/s of a float32 n x n matmul on this process's threads (2 n^3 per product), best of short bursts."""
    import time

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        for _ in range(4):
            a @ b
        best = max(best, 4 * 2 * n**3 / (time.perf_counter() - started))
    return best
