"""training.mixed_precision: auto picks the policy from the machine's facts (faked here)."""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import pytest

from chest_xray.modeling import precision, trainer
from chest_xray.modeling.precision import choose_policy, cpu_flags, gpu_compute_capability

SAPPHIRE_RAPIDS = {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}
COOPER_LAKE = {"avx2", "avx512f", "avx512_bf16"}
SKYLAKE = {"avx2", "avx512f", "avx512_vnni"}


@pytest.mark.parametrize(
    ("flags", "gpus", "policy", "said"),
    [
        (SAPPHIRE_RAPIDS, [], "mixed_bfloat16", "amx_bf16, avx512_bf16"),
        (COOPER_LAKE, [], "mixed_bfloat16", "avx512_bf16"),
        (SKYLAKE, [], "float32", "without AMX or AVX512-BF16"),
        (set(), [], "float32", "no GPU"),
        (SAPPHIRE_RAPIDS, [(8, 0)], "mixed_float16", "8.0"),  # the GPU trains, not the CPU
        (SKYLAKE, [(7, 0), (8, 6)], "mixed_float16", "7.0"),
        (SAPPHIRE_RAPIDS, [(6, 1)], "float32", "6.1, float16 needs 7.0"),
        (SKYLAKE, [(8, 0), (6, 0)], "float32", "8.0, 6.0"),  # the slowest GPU decides
        (COOPER_LAKE, [None], "float32", "unknown"),
    ],
)
def test_auto_follows_the_hardware(
    flags: set[str], gpus: list[tuple[int, int] | None], policy: str, said: str
) -> None:
    chosen = choose_policy("auto", flags, gpus)
    assert chosen.policy == policy
    assert said in chosen.reason
    assert chosen.describe().startswith(f"{policy} (training.mixed_precision: auto;")


@pytest.mark.parametrize(
    ("setting", "policy"),
    [("none", "float32"), ("float16", "mixed_float16"), ("bfloat16", "mixed_bfloat16")],
)
def test_a_named_precision_is_used_whatever_the_machine(setting: str, policy: str) -> None:
    for flags, gpus in [(SAPPHIRE_RAPIDS, []), (SKYLAKE, [(8, 0)]), (set(), [(6, 1)])]:
        assert choose_policy(setting, flags, gpus).policy == policy  # type: ignore[arg-type]


def test_cpu_flags_come_from_proc_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: Some Xeon\nflags\t\t: fpu avx512f avx512_bf16 amx_bf16\n"
        "processor\t: 1\nflags\t\t: fpu\n"
    )
    assert cpu_flags(cpuinfo) == {"fpu", "avx512f", "avx512_bf16", "amx_bf16"}
    assert cpu_flags(tmp_path / "absent") == frozenset()  # not Linux: no flags, float32


def test_a_gpus_compute_capability_is_read_from_tensorflows_details() -> None:
    assert gpu_compute_capability({"compute_capability": (8, 6), "device_name": "A10"}) == (8, 6)
    assert gpu_compute_capability({}) is None


def test_the_trainer_applies_logs_and_restores_what_auto_resolves_to(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    log = logging.getLogger("test_precision")
    previous = keras.mixed_precision.global_policy().name
    for flags, policy in [(COOPER_LAKE, "mixed_bfloat16"), (SKYLAKE, previous)]:
        monkeypatch.setattr(precision, "cpu_flags", lambda flags=flags: frozenset(flags))
        monkeypatch.setattr(precision, "gpu_capabilities", list)
        with caplog.at_level(logging.INFO, logger=log.name), trainer._precision("auto", log):
            assert keras.mixed_precision.global_policy().name == policy
        assert keras.mixed_precision.global_policy().name == previous
    said = [r.getMessage() for r in caplog.records]
    assert said[0].startswith("Precision: mixed_bfloat16 (training.mixed_precision: auto;")
    assert said[1].startswith("Precision: float32 (training.mixed_precision: auto;")
