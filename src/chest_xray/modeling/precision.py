"""Which precision a training runs in: ``training.mixed_precision``, ``auto`` resolved.

``auto`` (the default) picks what is fast on the machine at hand: ``mixed_bfloat16``
on a CPU with AMX or AVX512-BF16 (oneDNN's bfloat16 kernels: 1.9x the float32 images/s
measured on AVX512-BF16, docs/benchmarks.md), ``mixed_float16`` on a GPU with Tensor
Cores (compute capability 7.0 or more, where Keras' float16 is fast and TensorFlow does
not warn), ``float32`` otherwise. A machine with a GPU trains there, so its CPU's
flags do not count. The other values force a policy whatever the machine.

The facts (CPU flags from ``/proc/cpuinfo``, the GPUs' compute capabilities) are read
only for ``auto``; ``choose_policy`` decides from them alone, so the rule is tested with
any machine's facts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from chest_xray.modeling.params import MixedPrecision

# CPU flags (Linux /proc/cpuinfo names) with fast bfloat16 matrix maths.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
# Tensor Cores, where mixed float16 pays (Volta and later).
MIN_FLOAT16_CAPABILITY = (7, 0)
_FORCED = {"none": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}

# A GPU's compute capability, or None where the backend does not report it.
Capability = tuple[int, int] | None


@dataclass(frozen=True)
class Precision:
    """The Keras policy a training runs under, what was asked, and why."""

    setting: MixedPrecision
    policy: str  # float32 | mixed_float16 | mixed_bfloat16
    reason: str

    def describe(self) -> str:
        return f"{self.policy} (training.mixed_precision: {self.setting}; {self.reason})"


def choose_policy(
    setting: MixedPrecision, cpu_flags: Iterable[str], gpus: Sequence[Capability]
) -> Precision:
    """The policy for ``setting`` on a machine with ``cpu_flags`` and ``gpus``."""
    if setting != "auto":
        return Precision(setting, _FORCED[setting], "as set")
    if gpus:
        known = [capability for capability in gpus if capability is not None]
        if len(known) == len(gpus) and min(known) >= MIN_FLOAT16_CAPABILITY:
            lowest = ".".join(map(str, min(known)))
            return Precision(setting, "mixed_float16", f"GPU compute capability {lowest}")
        shown = ", ".join("unknown" if c is None else ".".join(map(str, c)) for c in gpus)
        return Precision(setting, "float32", f"GPU compute capability {shown}, float16 needs 7.0")
    flags = set(cpu_flags)
    found = [flag for flag in BF16_CPU_FLAGS if flag in flags]
    if found:
        return Precision(setting, "mixed_bfloat16", f"the CPU has {', '.join(found)}")
    return Precision(setting, "float32", "no GPU, and a CPU without AMX or AVX512-BF16")


def resolve_precision(setting: MixedPrecision) -> Precision:
    """``choose_policy`` with this machine's facts (read only for ``auto``)."""
    if setting != "auto":
        return choose_policy(setting, (), ())
    return choose_policy(setting, cpu_flags(), gpu_capabilities())


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The first CPU's flags; empty where there is no ``/proc/cpuinfo`` (not Linux)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def gpu_compute_capability(details: dict[str, object]) -> Capability:
    """``(major, minor)`` from TensorFlow's device details, None when absent."""
    capability = details.get("compute_capability")
    if isinstance(capability, tuple) and len(capability) == 2:
        return int(capability[0]), int(capability[1])
    return None


def gpu_capabilities() -> list[Capability]:
    """The compute capability of each GPU Keras trains on (None: not reported).

    TensorFlow reports it (``tf.config.experimental.get_device_details``) without
    starting its runtime, so a multi-worker strategy can still be made afterwards.
    Other backends: a GPU they list counts, its capability unknown.
    """
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return [
            gpu_compute_capability(tf.config.experimental.get_device_details(gpu))
            for gpu in tf.config.list_physical_devices("GPU")
        ]
    devices = [str(device).lower() for device in keras.distribution.list_devices()]
    return [None for device in devices if device.startswith(("gpu", "cuda"))]
