"""Hardware detection on this machine (CPU, RAM, the llama.cpp build's backend)."""

from __future__ import annotations

import psutil

from hanlin.engine.runtime.hardware import detect_hardware


def test_detect_hardware_reads_this_machine() -> None:
    hw = detect_hardware()
    assert hw.ram_total == psutil.virtual_memory().total
    assert 0 < hw.ram_available <= hw.ram_total
    assert 1 <= hw.physical_cores <= hw.logical_cores
    assert hw.cpu_name
    # This llama.cpp build (CI, this machine) is CPU-only.
    assert hw.backend == "cpu" and hw.gpu_offload_supported is False
    assert "CPU" in hw.build_info
    assert detect_hardware() is hw  # cached
    assert detect_hardware(refresh=True) is not hw
    assert set(hw.to_dict()) >= {"cpu_name", "ram_total", "backend", "vram_total", "build_info"}
