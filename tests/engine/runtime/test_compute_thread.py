"""Every llama.cpp decode runs on one OS thread, whichever thread asked for it.

engine/runtime/compute_thread.py says why (OpenMP keeps a team of workers per calling
thread; two teams fight over the cores). These tests check the contract: results and
exceptions come back to the caller, calls from many threads run on one thread in order,
and the real SmolLM2's decodes, asked for from several threads, all reach `llama_decode`
on that one thread.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import llama_cpp
import pytest

from hanlin.engine.runtime import batch as batch_module
from hanlin.engine.runtime import session as session_module
from hanlin.engine.runtime.compute_thread import on_compute_thread, run_compute
from hanlin.engine.runtime.loader import LoadOptions, load_model


def test_results_and_exceptions_come_back_to_the_caller() -> None:
    assert run_compute(lambda a, b: a + b, 2, 3) == 5
    with pytest.raises(ZeroDivisionError):
        run_compute(lambda: 1 / 0)
    assert not on_compute_thread()
    assert run_compute(on_compute_thread) is True
    # a call made on the compute thread runs there directly (no deadlock)
    assert run_compute(lambda: run_compute(lambda: threading.current_thread().name)) == (
        "hanlin-compute"
    )


def test_calls_from_many_threads_run_on_one_thread() -> None:
    seen: list[int] = []

    def record(i: int) -> int:
        seen.append(threading.get_ident())
        return i * i

    with ThreadPoolExecutor(8) as pool:
        squares = list(pool.map(lambda i: run_compute(record, i), range(64)))
    assert squares == [i * i for i in range(64)]
    assert len(set(seen)) == 1
    assert seen[0] != threading.get_ident()


@pytest.mark.slow
def test_real_decodes_from_several_threads_reach_llama_cpp_on_one_thread(
    smollm2_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []
    real_decode = llama_cpp.llama_decode

    def decode(ctx: object, batch: object) -> int:
        threads.append(threading.get_ident())
        return real_decode(ctx, batch)

    # both modules call llama_cpp.llama_decode through the module attribute
    monkeypatch.setattr(llama_cpp, "llama_decode", decode)
    assert session_module.llama_cpp is llama_cpp and batch_module.llama_cpp is llama_cpp

    model = load_model(smollm2_path, options=LoadOptions(n_ctx=512, threads=2))
    try:
        session = model.session
        tokens = session.tokenize("def add(a, b):\n    return a + b\n")

        def evaluate_then_step(token: int) -> None:
            with model.lock:
                session.evaluate(tokens)
                session.decode_next(token)

        workers = [threading.Thread(target=evaluate_then_step, args=(t,)) for t in (11, 12, 13)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        evaluate_then_step(14)  # and from the test's own thread
        assert len(threads) >= 8
        assert len(set(threads)) == 1
        assert threads[0] not in {w.ident for w in workers} | {threading.get_ident()}
    finally:
        model.close()
