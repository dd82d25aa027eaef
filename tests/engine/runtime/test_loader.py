"""Loading models with the real llama.cpp: the good path, bad files, GPU fallback, the host, logs.

The GPU path is the only mock (there is no GPU here): a patched constructor fails
every load that offloads layers, as a CUDA out-of-memory would.
"""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path

import gguf
import numpy as np
import pytest

from hanlin.engine.core.cancel import CancelToken, Progress
from hanlin.engine.core.errors import Cancelled, HanlinError, ModelFileError, ModelLoadError
from hanlin.engine.runtime import loader as runtime
from hanlin.engine.runtime.hardware import HardwareInfo, detect_hardware
from hanlin.engine.runtime.llama_log import recent_llama_log, route_llama_logs
from hanlin.engine.runtime.loader import LoadOptions, ModelHost, load_model

pytestmark = pytest.mark.slow

# Loads that generate use one thread: the test machine's cores are shared, and llama.cpp's
# threads spin-wait on each other, so two threads on a busy 2-core machine crawl.


def _assert_usable(model: runtime.LoadedModel) -> None:
    """The model really runs: evaluate a prompt and sample a token through the session."""
    from hanlin.engine.runtime.session import build_sampler

    with model.lock:
        s = model.session
        result = s.evaluate(s.tokenize("The capital of France is"), reuse=False)
        assert result.evaluated_tokens == result.prompt_tokens > 0
        with build_sampler(s.vocab, temperature=0) as sampler:
            tokens = list(s.generate(sampler, max_tokens=3))
        assert tokens and s.detokenize(tokens).strip()


def test_load_smollm2_with_defaults(smollm2_path: Path) -> None:
    with load_model(smollm2_path, options=LoadOptions(n_ctx=2048)) as model:
        assert model.path == smollm2_path
        assert model.model_id == smollm2_path.stem
        assert model.family == "llama"  # guessed from the metadata
        assert model.n_ctx == 2048
        assert model.backend == "cpu" and model.gpu_fallback is None and model.n_gpu_layers == 0
        assert model.threads == detect_hardware().physical_cores
        assert model.info.architecture == "llama" and model.chat_template
        assert model.model_handle and model.ctx and model.vocab
        assert model.llama.n_ctx() == 2048
    assert model.closed
    model.close()  # idempotent


def test_default_context_is_capped(smollm2_path: Path) -> None:
    with load_model(smollm2_path) as model:
        assert model.n_ctx == min(model.info.context_length or 8192, 8192)


def test_threads_follow_settings(smollm2_path: Path, hanlin_home: Path) -> None:
    (hanlin_home / "config").mkdir(parents=True, exist_ok=True)
    (hanlin_home / "config" / "settings.toml").write_text("threads = 1\n")
    with load_model(smollm2_path, options=LoadOptions(n_ctx=512)) as model:
        assert model.threads == 1


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "nope.gguf")


def test_random_bytes_are_not_a_gguf(tmp_path: Path, smollm2_path: Path) -> None:
    bad = tmp_path / "random.gguf"
    bad.write_bytes(os.urandom(4096))
    with pytest.raises(ModelFileError) as err:
        load_model(bad)
    assert str(bad) in str(err.value) and "not a GGUF" in str(err.value)
    # The process survives and still loads good models.
    with load_model(smollm2_path, options=LoadOptions(n_ctx=512, threads=1)) as model:
        _assert_usable(model)


def test_truncated_smollm2(tmp_path: Path, smollm2_path: Path) -> None:
    cut = tmp_path / "SmolLM2-truncated.gguf"
    size = smollm2_path.stat().st_size
    with smollm2_path.open("rb") as src:
        cut.write_bytes(src.read(size * 6 // 10))  # a download that stopped at 60%
    with pytest.raises(ModelFileError) as err:
        load_model(cut)
    assert str(cut) in str(err.value) and "truncated" in str(err.value)
    assert "download it again" in str(err.value)


def _write_unknown_arch(path: Path) -> None:
    writer = gguf.GGUFWriter(str(path), arch="hanlinfoo")
    writer.add_name("Not A Real Model")
    writer.add_block_count(1)
    writer.add_context_length(128)
    writer.add_embedding_length(8)
    writer.add_head_count(2)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_unknown_architecture_is_a_clear_load_error(tmp_path: Path, smollm2_path: Path) -> None:
    bad = tmp_path / "foo.gguf"
    _write_unknown_arch(bad)
    with pytest.raises(ModelLoadError) as err:
        load_model(bad)
    message = str(err.value)
    assert str(bad) in message and "hanlinfoo" in message and "not supported" in message
    assert "\n" not in message  # one line for the CLI
    assert any("hanlinfoo" in line for line in recent_llama_log(50))
    with load_model(smollm2_path, options=LoadOptions(n_ctx=512, threads=1)) as model:
        _assert_usable(model)


def _fake_cuda(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Pretend llama.cpp has CUDA, and make every GPU load fail like an out-of-memory."""
    real_hw = detect_hardware()
    fake = HardwareInfo(
        **{
            **real_hw.to_dict(),
            "backend": "cuda",
            "gpu_offload_supported": True,
            "gpu_name": "Fake GPU",
            "vram_total": 2 << 30,
            "vram_free": 1 << 30,
        }
    )
    monkeypatch.setattr(runtime, "detect_hardware", lambda: fake)
    calls: list[int] = []
    real_construct = runtime._construct_llama

    def construct(path: Path, *, n_gpu_layers: int, **kwargs: object):  # type: ignore[no-untyped-def]
        calls.append(n_gpu_layers)
        if n_gpu_layers != 0:
            raise runtime._LoadFailure("CUDA error: out of memory (cudaMalloc failed)")
        return real_construct(path, n_gpu_layers=n_gpu_layers, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(runtime, "_construct_llama", construct)
    return calls


def test_failed_gpu_load_falls_back_to_cpu_and_says_why(
    smollm2_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _fake_cuda(monkeypatch)
    with load_model(smollm2_path, options=LoadOptions(n_ctx=512, threads=1)) as model:
        assert calls[0] == -1 and calls[-1] == 0  # all layers tried first, then the CPU
        assert model.backend == "cpu" and model.n_gpu_layers == 0
        assert model.gpu_fallback is not None
        assert "cuda" in model.gpu_fallback and "out of memory" in model.gpu_fallback
        assert "CPU" in model.gpu_fallback
        _assert_usable(model)


def test_cpu_only_option_never_tries_the_gpu(
    smollm2_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _fake_cuda(monkeypatch)
    with load_model(
        smollm2_path, options=LoadOptions(n_ctx=512, n_gpu_layers=0, threads=1)
    ) as model:
        assert calls == [0]
        assert model.gpu_fallback is None


def test_gpu_load_success_reports_the_backend(
    smollm2_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_hw = detect_hardware()
    fake = HardwareInfo(**{**real_hw.to_dict(), "backend": "cuda", "gpu_offload_supported": True})
    monkeypatch.setattr(runtime, "detect_hardware", lambda: fake)
    # A CPU-only llama.cpp accepts n_gpu_layers=-1 and keeps the layers on the CPU.
    with load_model(smollm2_path, options=LoadOptions(n_ctx=512, threads=1)) as model:
        assert model.backend == "cuda" and model.n_gpu_layers == -1 and model.gpu_fallback is None


def test_model_host_keeps_one_model_and_closes_the_old(smollm2_path: Path, tmp_path: Path) -> None:
    host = ModelHost()
    a = host.get(smollm2_path, options=LoadOptions(n_ctx=512, threads=1))
    assert host.get(smollm2_path, options=LoadOptions(n_ctx=512, threads=1)) is a
    b = host.get(smollm2_path, options=LoadOptions(n_ctx=1024))
    assert b is not a and a.closed and not b.closed and host.current is b
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + os.urandom(64))
    with pytest.raises(HanlinError):
        host.get(bad)
    host.close()
    assert b.closed and host.current is None


def test_llama_logs_never_reach_stdout(
    smollm2_path: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "llama.log"
    route_llama_logs(log)
    try:
        with load_model(smollm2_path, options=LoadOptions(n_ctx=512, threads=1)) as model:
            _assert_usable(model)
        out, err = capfd.readouterr()
        assert out == ""  # the language server's protocol channel stays clean
        assert "llama_model_loader" in err + log.read_text() or "print_info" in log.read_text()
        assert log.stat().st_size > 0
    finally:
        route_llama_logs(None, level="error")


def test_load_reports_llama_cpps_progress(smollm2_path: Path) -> None:
    reports: list[Progress] = []
    with load_model(
        smollm2_path, options=LoadOptions(n_ctx=512, threads=1), on_progress=reports.append
    ) as model:
        _assert_usable(model)
    load = [p for p in reports if p.stage == "load"]
    assert all(p.total == 1.0 for p in load)
    fractions = [p.fraction for p in load]
    assert fractions == sorted(fractions)  # a bar that only moves forward
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert len([f for f in fractions if f is not None and 0 < f < 1]) >= 3  # real steps between
    assert len(load) <= 102  # at most one report per percent (the LSP sends each to the editor)
    assert reports[-1].stage == "ready"


def _live_llamas() -> set[int]:
    import llama_cpp

    gc.collect()
    return {
        id(o)
        for o in gc.get_objects()
        if isinstance(o, llama_cpp.Llama) and getattr(getattr(o, "_model", None), "model", None)
    }


def test_cancel_during_the_load_aborts_it(smollm2_path: Path) -> None:
    before = _live_llamas()
    token = CancelToken()
    reports: list[Progress] = []

    def on_progress(p: Progress) -> None:
        reports.append(p)
        if p.stage == "load" and 0 < p.done < 1:
            token.cancel("another model was chosen")

    host = ModelHost()
    started = time.perf_counter()
    with pytest.raises(Cancelled, match="another model was chosen"):
        host.get(
            smollm2_path,
            options=LoadOptions(n_ctx=512, threads=1),
            cancel=token,
            on_progress=on_progress,
        )
    load = [p for p in reports if p.stage == "load"]
    cancelled_at = next(i for i, p in enumerate(load) if 0 < p.done < 1)
    assert load[cancelled_at + 1 :] == []  # llama.cpp stopped at the next step
    assert all(p.stage != "ready" for p in reports)
    assert "cancelled model load" in " ".join(recent_llama_log(10))  # llama.cpp's own word
    assert host.current is None
    assert _live_llamas() <= before  # no half-loaded model left behind
    assert time.perf_counter() - started < 60
    # the host (and the process) load normally afterwards
    with host.get(smollm2_path, options=LoadOptions(n_ctx=512, threads=1)) as model:
        _assert_usable(model)
    host.close()


def test_cancel_after_the_weights_loaded_still_leaves_nothing(smollm2_path: Path) -> None:
    before = _live_llamas()
    token = CancelToken()

    def on_progress(p: Progress) -> None:
        if p.stage == "load" and p.done >= 1:
            token.cancel()  # llama.cpp ignores the answer at 100%: we must clean up ourselves

    with pytest.raises(Cancelled):
        load_model(
            smollm2_path,
            options=LoadOptions(n_ctx=512, threads=1),
            cancel=token,
            on_progress=on_progress,
        )
    assert _live_llamas() <= before


def test_an_error_in_the_progress_callback_stops_the_load_and_surfaces(
    smollm2_path: Path,
) -> None:
    def on_progress(p: Progress) -> None:
        if p.stage == "load" and p.done > 0:
            raise RuntimeError("the progress bar broke")

    with pytest.raises(RuntimeError, match="progress bar broke"):
        load_model(smollm2_path, options=LoadOptions(n_ctx=512, threads=1), on_progress=on_progress)


# A template whose constant expression Jinja folds while *compiling* it: llama-cpp-python
# compiles every GGUF template in `Llama.__init__` (unbounded, holding the GIL); measured
# 14 s for 10**10000000 before Hanlin kept the templates away from it.
_COMPILE_BOMB = "{{ 10 ** 10000000 }}{% for m in messages %}{{ m.content }}{% endfor %}"


def test_loading_a_gguf_with_a_hostile_template_does_not_compile_it(tmp_path: Path) -> None:
    from tests.support.tiny_fim_gguf import write_tiny_fim_gguf

    path = write_tiny_fim_gguf(tmp_path / "bomb.gguf", chat_template=_COMPILE_BOMB)
    started = time.perf_counter()
    model = load_model(path, options=LoadOptions(n_ctx=256, threads=1))
    try:
        assert time.perf_counter() - started < 5
        # Hanlin still has the template (it renders it itself, sandboxed and time-bounded)
        assert model.chat_template == _COMPILE_BOMB
        assert not any(k.startswith("tokenizer.chat_template") for k in model.llama.metadata)
    finally:
        model.close()
