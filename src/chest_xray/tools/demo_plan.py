"""What the synthetic download holds, planned before anything is drawn: names, patients, quirks.

The plan is a list of items (an image and/or a metadata row) per split, in the real CSV's
row order: NORMAL and PNEUMONIA patients with several images each and the real file-name
conventions, the COVID/SARS/ARDS rows with their odd names, extensions and modes, and the
messy parts a loader must survive (files without a row, rows without a file). Patient ids
run on across splits, so no patient is in both. Drawing the images is ``demo_images``'s;
writing files and CSVs ``demo_data``'s.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

Split = Literal["train", "test"]
ClassName = Literal["NORMAL", "PNEUMONIA"]

NORMAL_SHARE = 0.3  # the real set is ~27% normal
_IMAGES_PER_PATIENT = (1, 1, 1, 2, 2, 3)


@dataclass(frozen=True)
class Item:
    """One image and/or metadata row; the unit everything else is derived from."""

    name: str
    cls: ClassName
    label_1: str = ""  # bacteria / Virus / Stress-Smoking; empty for Normal
    label_2: str = ""  # COVID-19 / Streptococcus / SARS / ARDS or empty
    mode: str = "L"  # PIL mode the file is stored in
    has_row: bool = True
    has_file: bool = True
    patient: int = 0  # index into the anatomy table, shared by a patient's images


@dataclass
class Names:
    """Counters that make patient ids unique across splits (no patient in both)."""

    rng: np.random.Generator
    im_number: int = 100
    person: int = 0
    image_number: dict[str, int] = field(default_factory=lambda: {"bacteria": 0, "virus": 0})

    def normal_patient(self, n_images: int) -> list[str]:
        """``IM-0115-0001.jpeg`` or ``NORMAL2-IM-0381-0001.jpeg``; one number pool for both."""
        self.im_number += int(self.rng.integers(1, 4))
        prefix = "NORMAL2-IM" if self.rng.random() < 0.4 else "IM"
        return [f"{prefix}-{self.im_number:04d}-{k + 1:04d}.jpeg" for k in range(n_images)]

    def pneumonia_patient(self, n_images: int, kind: str) -> list[str]:
        """``person12_bacteria_45.jpeg``: person id, then a running per-kind image number."""
        self.person += int(self.rng.integers(1, 3))
        names = []
        for _ in range(n_images):
            self.image_number[kind] += int(self.rng.integers(1, 3))
            names.append(f"person{self.person}_{kind}_{self.image_number[kind]}.jpeg")
        return names


def _patient_sizes(rng: np.random.Generator, total: int) -> Iterator[int]:
    """Images per patient summing to ``total``, so a patient-aware split has groups."""
    left = total
    while left > 0:
        n = min(left, int(rng.choice(_IMAGES_PER_PATIENT)))
        left -= n
        yield n


def _plain_mode(rng: np.random.Generator) -> str:
    """Most files are 8-bit grey, stored as L or as grey-in-RGB JPEG."""
    return "RGB" if rng.random() < 0.3 else "L"


def _normal_items(rng: np.random.Generator, names: Names, count: int, pid: list[int]) -> list[Item]:
    """``count`` NORMAL images grouped into patients; ``pid`` is the running patient id."""
    items = []
    for size in _patient_sizes(rng, count):
        pid[0] += 1
        items += [
            Item(n, "NORMAL", mode=_plain_mode(rng), patient=pid[0])
            for n in names.normal_patient(size)
        ]
    return items


def _pneumonia_items(
    rng: np.random.Generator, names: Names, count: int, pid: list[int]
) -> list[Item]:
    """``count`` bacterial/viral PNEUMONIA images; one kind per patient."""
    items = []
    for size in _patient_sizes(rng, count):
        pid[0] += 1
        kind = "bacteria" if rng.random() < 0.63 else "virus"
        label_1 = "bacteria" if kind == "bacteria" else "Virus"
        items += [
            Item(n, "PNEUMONIA", label_1, mode=_plain_mode(rng), patient=pid[0])
            for n in names.pneumonia_patient(size, kind)
        ]
    return items


def _special_items(rng: np.random.Generator, count: int, pid: list[int]) -> list[Item]:
    """COVID/SARS/ARDS/Streptococcus rows with the odd names, extensions and modes."""
    u = uuid.UUID(bytes=rng.bytes(16), version=4)
    fixed = [
        (f"{str(u).upper()}.png", "Virus", "COVID-19", "RGBA"),
        ("41591_2020_819_Fig1_HTML.webp-day5.png", "Virus", "COVID-19", "I;16"),
        ("1-s2.0-S1684118220300682-main.pdf-003-b1.png", "Virus", "COVID-19", "P"),
        ("1-s2.0-S0140673620303706-fx1_lrg.jpg", "Virus", "COVID-19", "RGB"),
        ("acute-respiratory-distress-syndrome-ards.jpg", "Stress-Smoking", "ARDS", "L"),
        ("SARS-10.1148rg.242035193-g04mr34g09a-Fig9a-day17.jpeg", "Virus", "SARS", "L"),
        ("streptococcus-pneumoniae-pneumonia-1.jpg", "bacteria", "Streptococcus", "RGB"),
        ("acute-respiratory-distress-syndrome-ards-1.jpg", "Stress-Smoking", "ARDS", "L"),
    ]
    extra = [
        (f"kjr-21-e24-g{k:03d}-l-a.jpg", "Virus", "COVID-19", "RGB")
        for k in range(1, count - len(fixed) + 1)
    ]
    items = []
    for name, label_1, label_2, mode in (fixed + extra)[:count]:
        pid[0] += 1
        items.append(Item(name, "PNEUMONIA", label_1, label_2, mode, patient=pid[0]))
    return items


def plan_train(rng: np.random.Generator, names: Names, n: int, pid: list[int]) -> list[Item]:
    """Labelled normals, pneumonias and specials, then the quirks, in the real row order."""
    n_normal = round(n * NORMAL_SHARE)
    n_special = 8 + n // 60
    normals = _normal_items(rng, names, n_normal, pid)
    cmyk = int(rng.integers(len(normals)))
    normals[cmyk] = replace(normals[cmyk], mode="CMYK")
    pneumonias = _pneumonia_items(rng, names, n - n_normal - n_special, pid)
    specials = _special_items(rng, n_special, pid)
    pid[0] += 1
    missing_normal = Item(names.normal_patient(1)[0], "NORMAL", has_file=False, patient=pid[0])
    u = uuid.UUID(bytes=rng.bytes(16), version=4)
    missing_covid = Item(f"{str(u).upper()}.jpeg", "PNEUMONIA", "Virus", "COVID-19", has_file=False)
    unlabelled = [  # files in train/ that the CSV never mentions
        replace(_normal_items(rng, names, 1, pid)[0], has_row=False),
        replace(_pneumonia_items(rng, names, 1, pid)[0], has_row=False),
        replace(_normal_items(rng, names, 1, pid)[0], has_row=False),
    ]
    return [*normals, missing_normal, *pneumonias, *specials, missing_covid, *unlabelled]


def plan_test(rng: np.random.Generator, names: Names, n: int, pid: list[int]) -> list[Item]:
    """Like the real TEST split: plain names only, and one row whose file is missing."""
    n_normal = max(1, round(n * NORMAL_SHARE))
    normals = _normal_items(rng, names, n_normal, pid)
    pneumonias = _pneumonia_items(rng, names, n - n_normal, pid)
    missing = replace(_pneumonia_items(rng, names, 1, pid)[0], has_file=False)
    return [*normals, *pneumonias, missing]
