"""Where a model is loaded: the supervisor (shared by forked workers) or the model host."""

from __future__ import annotations

import os

import pytest

from worker.inference import registry
from worker.inference.registry import ModelSpec


def spec(device: str) -> ModelSpec:
    return ModelSpec(name="m", loader=lambda: lambda xs: xs, device=device)


@pytest.mark.parametrize(
    ("device", "placement", "hosted"),
    [
        ("cpu", "auto", False),
        ("cuda", "auto", True),
        ("cuda:1", "auto", True),
        ("cpu", "process", True),
        ("auto", "process", True),
    ],
)
def test_gpu_models_and_every_model_with_process_go_to_the_host(
    device: str, placement: str, hosted: bool
) -> None:
    assert registry.needs_host(spec(device), placement) is hosted


def test_auto_asks_torch_without_initialising_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    seen: list[str | None] = []
    monkeypatch.delenv("PYTORCH_NVML_BASED_CUDA_CHECK", raising=False)

    def available() -> bool:
        seen.append(os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK"))
        return True

    monkeypatch.setattr(torch.cuda, "is_available", available)
    assert registry.needs_host(spec("auto"), "auto") is True
    assert registry.resolve_device("auto") == "cuda"
    assert seen == ["1", "1"]  # NVML's check: this process's CUDA stays untouched
    assert "PYTORCH_NVML_BASED_CUDA_CHECK" not in os.environ
