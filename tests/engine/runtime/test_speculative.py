"""Speculative decoding on the real SmolLM2: the same tokens as plain decoding, in fewer steps.

Plain and speculative runs start from the same evaluated prompt and the same sampler
settings; the speculative one must yield the very same token ids (greedy, and with a fixed
seed above temperature 0), stop at the same place for end-of-generation tokens, stop ids,
stop strings, `max_tokens` and cancel — also when that place lies inside a draft the model
accepted — and leave a KV cache that holds only what was yielded. On an edit prompt it must
need fewer llama_decode calls (counted, not timed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from hanlin.engine.chat.stream import ChatMessage, ChatSession, stream_chat
from hanlin.engine.chat.template import ChatPrompter
from hanlin.engine.core.cancel import CancelToken
from hanlin.engine.models.catalog import Sampling
from hanlin.engine.runtime.draft_policy import fit_batch_cost
from hanlin.engine.runtime.loader import LoadedModel, LoadOptions, load_model
from hanlin.engine.runtime.session import build_sampler
from hanlin.engine.runtime.speculative import (
    Draft,
    DraftModelDrafter,
    DraftPolicy,
    PromptLookupDrafter,
    Speculator,
    expected_gain,
    speculator_for,
)

CLASS = """class Stack:
    def __init__(self):
        self.items = []

    def push(self, item):
        self.items.append(item)

    def pop(self):
        return self.items.pop()

    def is_empty(self):
        return len(self.items) == 0
"""
FUNC = """def greet(name):
    message = "Hello, " + name + "!"
    print(message)
    return message
"""
#: SmolLM2 answers these by copying the code (and then explaining it in new words)
EDIT_PROMPTS = [
    f"Rename `message` to `greeting` in this function:\n\n```python\n{FUNC}```",
    f"Add a `peek` method to this class. Return the whole class.\n\n```python\n{CLASS}```",
]
#: nothing to copy: drafts are few and mostly rejected
FREE_PROMPTS = [
    "Write a short poem about the sea.",
    "Explain in two sentences why the sky is blue.",
]
GREEDY = {"temperature": 0.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0, "repeat_penalty": 1.0}
N_TOKENS = 96


@pytest.fixture(scope="module")
def smol(smollm2_path: Path) -> LoadedModel:
    model = load_model(smollm2_path, options=LoadOptions(n_ctx=2048, threads=2))
    yield model
    model.close()


def prompt_tokens(model: LoadedModel, text: str) -> list[int]:
    return ChatPrompter(model, model.behavior, True).prompt([ChatMessage("user", text)])[0]


class RecordingDrafter(PromptLookupDrafter):
    """Prompt lookup that remembers every draft it made (to see where a stop fell)."""

    def __init__(self) -> None:
        super().__init__()
        self.drafts: list[list[int]] = []

    def propose(self, history: Sequence[int], limit: int, choose: Callable[[str], int]):
        draft = super().propose(history, limit, choose)
        if draft is not None:
            self.drafts.append(list(draft.tokens))
        return draft


class AlwaysDraft:
    """A policy stand-in that always drafts the longest it may (to exercise verification)."""

    n_max = 16

    def length(self, _source: str) -> int:
        return self.n_max

    def record(self, *_args: object) -> None: ...
    def decode_timed(self, *_args: object) -> None: ...
    def draft_timed(self, *_args: object) -> None: ...


def run(
    model: LoadedModel,
    prompt: list[int],
    *,
    speculator: Speculator | None,
    max_tokens: int = N_TOKENS,
    seed: int | None = None,
    stop_tokens: Callable[[int], bool] | None = None,
    cancel: CancelToken | None = None,
    on_token: Callable[[list[int]], None] | None = None,
    **sampling: float,
) -> tuple[list[int], str, int]:
    """(tokens, stop reason, decode calls) of one generation after `prompt`."""
    session = model.session
    session.reset()
    session.evaluate(prompt)
    calls = session.decode_calls
    out: list[int] = []
    with build_sampler(session.vocab, seed=seed, **(sampling or GREEDY)) as sampler:
        for token in session.generate(
            sampler,
            max_tokens=max_tokens,
            cancel=cancel,
            stop_tokens=stop_tokens,
            speculator=speculator,
        ):
            out.append(token)
            if on_token is not None:
                on_token(out)
    return out, session.last_stop_reason, session.decode_calls - calls


def assert_cache_holds(model: LoadedModel, prompt: list[int], out: list[int]) -> None:
    """The cache holds the prompt and what was yielded (the last token may be missing)."""
    cached = model.session.tokens
    assert cached[: len(prompt)] == prompt
    assert cached[len(prompt) :] in (out, out[:-1])


@pytest.mark.slow
@pytest.mark.parametrize(
    "text", EDIT_PROMPTS + FREE_PROMPTS, ids=["rename", "add-method", "poem", "explain"]
)
def test_greedy_output_is_identical_to_plain(smol: LoadedModel, text: str) -> None:
    prompt = prompt_tokens(smol, text)
    plain, plain_reason, _ = run(smol, prompt, speculator=None)
    spec = Speculator(PromptLookupDrafter())
    fast, fast_reason, _ = run(smol, prompt, speculator=spec)
    assert fast == plain
    assert fast_reason == plain_reason
    assert spec.last.tokens == len(plain)
    assert_cache_holds(smol, prompt, fast)


@pytest.mark.slow
def test_forced_drafts_are_identical_even_when_mostly_rejected(smol: LoadedModel) -> None:
    """Every token a draft (1-token lookups included): most are rejected; output unchanged."""
    prompt = prompt_tokens(smol, FREE_PROMPTS[0])
    plain, _, _ = run(smol, prompt, speculator=None)
    spec = Speculator(PromptLookupDrafter(), policy=AlwaysDraft())  # type: ignore[arg-type]
    fast, _, _ = run(smol, prompt, speculator=spec)
    assert fast == plain
    assert spec.last.drafts > 10
    assert spec.last.acceptance_rate is not None and spec.last.acceptance_rate < 0.5
    assert_cache_holds(smol, prompt, fast)


@pytest.mark.slow
def test_sampled_output_with_a_seed_is_identical_to_plain(smol: LoadedModel) -> None:
    """Above temperature 0 each emitted token is still one sample of the real chain, drawn
    in the same order: with the same seed the same tokens come out."""
    prompt = prompt_tokens(smol, EDIT_PROMPTS[1])
    params = {"temperature": 0.8, "top_k": 40, "top_p": 0.95, "min_p": 0.05}
    plain, _, _ = run(smol, prompt, speculator=None, seed=7, **params)
    spec = Speculator(PromptLookupDrafter())
    fast, _, _ = run(smol, prompt, speculator=spec, seed=7, **params)
    assert fast == plain
    assert spec.last.accepted > 0


@pytest.mark.slow
def test_an_edit_prompt_needs_fewer_decode_calls(smol: LoadedModel) -> None:
    prompt = prompt_tokens(smol, EDIT_PROMPTS[0])
    plain, _, plain_calls = run(smol, prompt, speculator=None)
    # the real policy, with the batch cost fixed rather than timed on a busy machine
    spec = Speculator(PromptLookupDrafter(), policy=DraftPolicy(alpha=0.5))
    fast, _, fast_calls = run(smol, prompt, speculator=spec)
    assert fast == plain
    assert plain_calls == len(plain)  # one call per token, the last included
    assert fast_calls <= plain_calls // 2, (fast_calls, plain_calls)
    assert spec.last.decode_calls == fast_calls
    assert spec.last.acceptance_rate is not None and spec.last.acceptance_rate > 0.7


@pytest.mark.slow
def test_end_of_generation_inside_an_accepted_draft(smol: LoadedModel) -> None:
    """The copied code block ends the prompt's user turn, so the draft after the closing
    fence carries `<|im_end|>` itself: accepted, it ends the answer exactly as plain does."""
    prompt = prompt_tokens(smol, EDIT_PROMPTS[0])
    plain, plain_reason, _ = run(smol, prompt, speculator=None, max_tokens=400)
    assert plain_reason == "stop"
    drafter = RecordingDrafter()
    spec = Speculator(drafter, policy=AlwaysDraft())  # type: ignore[arg-type]
    fast, fast_reason, _ = run(smol, prompt, speculator=spec, max_tokens=400)
    assert (fast, fast_reason) == (plain, plain_reason)
    eog = [t for d in drafter.drafts for t in d if smol.session.is_eog(t)]
    assert eog, "no draft carried the end-of-turn token"
    assert_cache_holds(smol, prompt, fast)


@pytest.mark.slow
def test_stop_token_inside_an_accepted_draft(smol: LoadedModel) -> None:
    prompt = prompt_tokens(smol, EDIT_PROMPTS[1])
    plain_all, _, _ = run(smol, prompt, speculator=None)
    # a token of the copied code, well after the copy began: it arrives inside a draft
    stop_id = plain_all[30]
    stop = stop_id.__eq__
    plain, plain_reason, _ = run(smol, prompt, speculator=None, stop_tokens=stop)
    drafter = RecordingDrafter()
    spec = Speculator(drafter, policy=AlwaysDraft())  # type: ignore[arg-type]
    fast, fast_reason, _ = run(smol, prompt, speculator=spec, stop_tokens=stop)
    assert plain_reason == fast_reason == "stop"
    assert fast == plain and stop_id not in fast
    last_draft = drafter.drafts[-1]
    assert stop_id in last_draft and last_draft.index(stop_id) > 0
    assert_cache_holds(smol, prompt, fast)


@pytest.mark.slow
def test_max_tokens_is_never_exceeded(smol: LoadedModel) -> None:
    prompt = prompt_tokens(smol, EDIT_PROMPTS[1])
    plain, _, _ = run(smol, prompt, speculator=None, max_tokens=40)
    for limit in (1, 2, 5, 17, 40):
        spec = Speculator(PromptLookupDrafter(), policy=AlwaysDraft())  # type: ignore[arg-type]
        fast, reason, _ = run(smol, prompt, speculator=spec, max_tokens=limit)
        assert fast == plain[:limit], limit  # greedy: a shorter answer is a prefix
        assert len(fast) == limit and reason == "length"
        assert_cache_holds(smol, prompt, fast)


@pytest.mark.slow
def test_cancel_mid_draft(smol: LoadedModel) -> None:
    """Cancelled while a verified draft is being handed out: nothing more is yielded, and the
    draft tokens nobody saw leave the cache."""
    prompt = prompt_tokens(smol, EDIT_PROMPTS[1])
    cancel = CancelToken()
    seen_mid_draft: list[bool] = []

    def on_token(out: list[int]) -> None:
        if len(out) == 12:
            # the cache is ahead of what was yielded: a draft is being handed out
            seen_mid_draft.append(len(smol.session.tokens) > len(prompt) + len(out))
            cancel.cancel("test")

    spec = Speculator(PromptLookupDrafter(), policy=AlwaysDraft())  # type: ignore[arg-type]
    fast, reason, _ = run(smol, prompt, speculator=spec, cancel=cancel, on_token=on_token)
    assert reason == "cancelled"
    assert len(fast) == 12
    assert seen_mid_draft == [True]
    plain, _, _ = run(smol, prompt, speculator=None, max_tokens=12)
    assert fast == plain
    assert len(smol.session.tokens) <= len(prompt) + 12


@pytest.mark.slow
def test_stream_chat_is_identical_and_reports_acceptance(smol: LoadedModel) -> None:
    """Through the chat: a stop string inside the copied code, the stats, and a second turn
    that re-uses the cache speculation left behind."""
    sampling = Sampling(max_tokens=N_TOKENS, **GREEDY)
    messages = [ChatMessage("user", EDIT_PROMPTS[1])]
    speculator = speculator_for(smol)
    assert speculator is not None and speculator is speculator_for(smol, enabled=True)
    speculator.policy = DraftPolicy(alpha=0.5)  # not timed: the same decisions on a busy machine
    smol.session.reset()
    plain = stream_chat(smol, messages, sampling=sampling, speculative=False, stop=["pop("])
    smol.session.reset()
    fast = stream_chat(smol, messages, sampling=sampling, speculative=True, stop=["pop("])
    assert fast.content == plain.content and fast.stats.stop_reason == "stop"
    assert plain.stats.speculative is None and plain.stats.acceptance_rate is None
    assert fast.stats.speculative == "prompt lookup"
    assert fast.stats.accepted_tokens > 0
    assert fast.stats.acceptance_rate == fast.stats.accepted_tokens / fast.stats.drafted_tokens
    assert fast.stats.decode_calls < plain.stats.decode_calls

    replies = {}
    for mode in (False, None):  # None: the default, on where it pays
        smol.session.reset()
        chat = ChatSession(smol, sampling=sampling, speculative=mode)
        first = chat.send(EDIT_PROMPTS[0])
        second = chat.send("Now rename `name` to `person` as well.")
        assert second.stats.cached_tokens > first.stats.prompt_tokens // 2
        replies[mode] = (first.content, second.content)
    assert replies[None] == replies[False]
    assert speculator_for(smol, enabled=False) is None


@pytest.mark.slow
def test_smollm2_drafting_for_itself(smol: LoadedModel, smollm2_path: Path) -> None:
    """The same weights as a draft model: every greedy draft is what the model samples."""
    from hanlin.engine.runtime.draft_model import load_draft_model

    draft = load_draft_model(smol, str(smollm2_path))
    try:
        assert draft.n_ctx == smol.n_ctx
        prompt = prompt_tokens(smol, FREE_PROMPTS[1])
        plain, plain_reason, plain_calls = run(smol, prompt, speculator=None)
        drafter = DraftModelDrafter(draft, main_vocab_size=smol.session.n_vocab)
        # drafts as long as allowed: a same-size draft model never pays, so the real
        # policy would soon stop asking it (its measured cost is that of the main model)
        spec = Speculator(drafter, policy=AlwaysDraft())  # type: ignore[arg-type]
        fast, fast_reason, fast_calls = run(smol, prompt, speculator=spec)
        assert (fast, fast_reason) == (plain, plain_reason)
        assert spec.last.acceptance_rate is not None and spec.last.acceptance_rate >= 0.95
        assert fast_calls < plain_calls // 4

        sampling = Sampling(max_tokens=48, **GREEDY)
        messages = [ChatMessage("user", FREE_PROMPTS[0])]
        smol.session.reset()
        alone = stream_chat(smol, messages, sampling=sampling, speculative=False)
        smol.session.reset()
        helped = stream_chat(smol, messages, sampling=sampling, draft=draft)
        assert helped.content == alone.content
        assert helped.stats.speculative == f"draft model {draft.model_id} + prompt lookup"
        # the draft model's guesses are right; prompt lookup's (1-token matches) less often
        assert helped.stats.drafted_tokens > 0
        assert helped.stats.acceptance_rate is not None and helped.stats.acceptance_rate > 0.5
    finally:
        draft.close()


# ---------------------------------------------------------------- the drafter, no model


def test_prompt_lookup_copies_what_followed_the_latest_match() -> None:
    drafter = PromptLookupDrafter()
    history = [1, 2, 3, 4, 5, 9, 9, 2, 3, 4, 6, 7, 8, 0, 2, 3, 4]
    drafter.begin(history[:5])
    draft = drafter.propose(history, 3, lambda _s: 16)
    assert draft == Draft([6, 7, 8], "lookup:3")  # "2 3 4" last seen before "6 7 8"
    assert drafter.propose([*history, 42], 8, lambda _s: 16) is None  # 42 never seen
    one = drafter.propose([5, 1, 5], 8, lambda _s: 16)
    assert one == Draft([1, 5], "lookup:1")
    assert drafter.propose(history, 8, lambda _s: 0) is None  # the policy says no


def test_prompt_lookup_follows_a_new_history() -> None:
    drafter = PromptLookupDrafter(ngram_max=2)
    drafter.begin([1, 2, 3])
    assert drafter.propose([1, 2, 3, 1, 2], 4, lambda _s: 4) == Draft([3, 1, 2], "lookup:2")
    # another conversation: the index is rebuilt, not mixed with the old one
    assert drafter.propose([7, 8, 7], 4, lambda _s: 4) == Draft([8, 7], "lookup:1")


# ---------------------------------------------------------------- the policy, no model


def test_policy_drafts_long_when_drafts_are_accepted() -> None:
    policy = DraftPolicy(backend="cpu")
    for _ in range(20):
        policy.record("lookup:4", 16, 16)
    assert policy.length("lookup:4") >= 8
    assert policy.acceptance("lookup:4") > 0.95


def test_policy_switches_a_source_off_and_probes_it_now_and_then() -> None:
    policy = DraftPolicy(backend="cpu")
    for _ in range(10):
        policy.record("lookup:1", 4, 0)
    lengths = [policy.length("lookup:1") for _ in range(100)]
    probes = [n for n in lengths if n]
    assert 1 <= len(probes) <= 100 // 8 and all(n <= 2 for n in probes)
    first = lengths.index(probes[0])
    policy.record("lookup:1", probes[0], 0)  # the probe failed: the next one waits longer
    again = [policy.length("lookup:1") for _ in range(100)]
    assert again.index(next(n for n in again if n)) + 1 > first + 1
    assert policy.length("lookup:4") > 0  # another source keeps its own record


def test_policy_follows_the_measured_cost_of_a_batch() -> None:
    """A machine where a batch costs nearly as much as its tokens one by one (alpha ~1):
    only near-certain drafts pay; where batches are almost free (a GPU) long ones do."""
    slow = DraftPolicy(backend="cpu")
    for i in range(50):
        slow.decode_timed(1, 0.010)
        slow.decode_timed(9, 0.090 if i % 10 else 0.900)  # now and then preempted
    assert 0.9 < slow.alpha < 1.1
    for _ in range(5):
        slow.record("lookup:2", 4, 2)
    assert slow.length("lookup:2") == 0
    fast = DraftPolicy(backend="cuda")
    for _ in range(50):
        fast.decode_timed(1, 0.010)
        fast.decode_timed(9, 0.0105)
    assert fast.alpha < 0.05
    for _ in range(5):
        fast.record("lookup:2", 4, 2)
    assert fast.length("lookup:2") >= 2
    assert expected_gain(1.0, 8, 0.0) == 9.0
    assert expected_gain(0.0, 8, 0.5) < 1.0


def test_prompt_lookup_continues_the_copy_it_drafted_from() -> None:
    """After a whole draft and the copy's next token were accepted, the next draft goes on
    from the same place, even where the last tokens also occur later elsewhere."""
    code = [10, 11, 12, 13, 14, 15, 16, 17, 18, 19]
    elsewhere = [90, 12, 13, 77, 78]  # "12 13" again, followed by something else
    prompt = [1, *code, 2, *elsewhere, 3]
    drafter = PromptLookupDrafter()
    drafter.begin(prompt)
    history = [*prompt, 10, 11]
    first = drafter.propose(history, 1, lambda _s: 16)
    assert first == Draft([12], "lookup:2")
    history += [12, 13]  # the draft, and the model's own next token: the copy's next one
    second = drafter.propose(history, 4, lambda _s: 16)
    assert second == Draft([14, 15, 16, 17], "lookup:run")  # not 77 78 after "12 13"
    history += [14, 15, 99]  # rejected at 16: the run is over
    third = drafter.propose(history, 4, lambda _s: 16)
    assert third is None or third.source != "lookup:run"


def test_policy_keeps_measuring_a_single_step() -> None:
    """Where every step could draft (a draft model always has a guess), a plain step now
    and then measures what one token costs."""
    policy = DraftPolicy(backend="cpu")
    for _ in range(20):
        policy.record("model", 8, 8)
    lengths = []
    for _ in range(100):
        k = policy.length("model")
        lengths.append(k)
        policy.decode_timed(k + 1, 0.010 * (1 + 0.3 * k))  # a batch of k drafts, or one token
    assert 0 < lengths.count(0) <= 100 // 32 + 2
    assert 0.2 < policy.alpha < 0.4  # measured: 0.3


def test_batch_cost_is_a_fixed_part_and_a_per_token_part() -> None:
    """A CPU as measured (SmolLM2, 2 EPYC cores): a batch of 2 costs 2.1 single steps, one
    of 17 costs 7.4 — a fixed cost of leaving the single-token path plus ~0.38 a token.
    One cost per token (1.1 from the batches of 2) would forbid every long draft."""
    t1 = 0.0063
    measured = {2: 2.12, 5: 3.26, 9: 4.42, 17: 7.43}  # batch size -> steps
    policy = DraftPolicy(backend="cpu")
    for _ in range(8):
        policy.decode_timed(1, t1)
        for n, steps in measured.items():
            policy.decode_timed(n, t1 * steps)
    assert 0.6 < policy.overhead < 1.0
    assert 0.3 < policy.alpha < 0.45
    for n, steps in measured.items():
        predicted = 1 + policy.overhead + policy.alpha * (n - 1)
        assert abs(predicted - steps) / steps < 0.15

    # only probes of one token were ever timed: the prior decides the split, and a source
    # that copies nearly always is still worth a long draft
    probed = DraftPolicy(backend="cpu")
    for _ in range(10):
        probed.decode_timed(1, t1)
        probed.decode_timed(2, t1 * 2.12)
    assert probed.overhead > 0.3
    assert probed.alpha < 0.8
    for _ in range(10):
        probed.record("lookup:run", 16, 16)
    assert probed.length("lookup:run") >= 8
    assert fit_batch_cost({}, 0.5) == (0.0, 0.5)
